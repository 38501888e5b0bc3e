#!/bin/sh
# ipp-engine.sh - a pretend print engine for `ippeveprinter -c`.
#
# ippeveprinter runs this once per document as `ipp-engine.sh SPOOLFILE` and
# reads what we write to stderr:
#   STATE: +reason / STATE: -reason / STATE: none   change printer-state-reasons
#   ERROR: text / INFO: text                           messages for its log
# Exit status 0 completes the job; any other status aborts it.
#
# What the engine does for a job is decided by a mode file, read afresh for
# every job: $SHOMEI_ENGINE_MODE_FILE if set, otherwise MODE next to the spool
# file (the ippeveprinter -d directory). A missing or empty file means `ok`.
# The first word is the mode, the second its argument:
#   ok            print nothing, exit 0                 -> job completed
#   fail          ERROR line, exit 1                    -> job aborted
#   media-empty   STATE: +media-empty, ERROR, exit 1    -> job aborted, printer
#                 reports media-empty-report; ippeveprinter then keeps later
#                 jobs in processing until media is reloaded through its web
#                 form, which must fill every tray, or an unfilled one counts
#                 as empty again (default trays: 1 main, 3 by-pass-tray):
#                 curl 'http://127.0.0.1:PORT/media?size1=na_letter_8.5x11in&type1=stationery&level1=250&size3=na_number-10_4.125x9.5in&type3=envelope&level3=25'
#   toner-low     STATE: +toner-low, exit 0             -> completed, toner-low-report
#   clear         STATE: none, exit 0                   -> completed, reasons cleared
#   slow N        sleep N seconds (whole number), then behave like ok
#   hold          wait until RELEASE appears next to the spool file, delete it,
#                 then behave like ok (lets a test hold a job in processing).
#                 ippeveprinter does not stop the command when the job is
#                 cancelled: a cancelled held job stays processing
#                 (processing-to-stop-point) until RELEASE, then turns canceled.
#                 If ippeveprinter itself exits, a holding engine exits too.
#   stop REASON   the printer stops mid-job: STATE: +REASON (paused, media-jam,
#                 media-empty, ...), then waits like `hold` until RELEASE,
#                 then STATE: -REASON and behaves like ok (a cancelled job
#                 ends canceled).
# Anything else is reported with ERROR and aborts the job, so a typo in a test
# does not pass silently.
#
# If $SHOMEI_ENGINE_LOG is set, one line per job is appended to it:
#   <unix time> <job file name> <mode>[ <arg>] <outcome>

spool=${1:?usage: ipp-engine.sh SPOOLFILE}
spool_dir=$(dirname -- "$spool")
mode_file=${SHOMEI_ENGINE_MODE_FILE:-$spool_dir/MODE}

mode=
arg=
if [ -r "$mode_file" ]; then
    # `read` fails on a file without a final newline but still fills the
    # variables, hence the `|| :`.
    read -r mode arg _rest <"$mode_file" || :
fi
[ -n "$mode" ] || mode=ok

# finish STATUS OUTCOME: log the job (if asked to) and exit with STATUS.
finish() {
    if [ -n "${SHOMEI_ENGINE_LOG:-}" ]; then
        printf '%s %s %s%s %s\n' "$(date +%s)" "$(basename -- "$spool")" \
            "$mode" "${arg:+ $arg}" "$2" >>"$SHOMEI_ENGINE_LOG"
    fi
    exit "$1"
}

# wait_release: waits until RELEASE appears next to the spool file, then
# deletes it. Gives up if ippeveprinter went away, so that a leftover engine
# does not swallow the RELEASE meant for a later printer's job.
wait_release() {
    release=$spool_dir/RELEASE
    while [ ! -e "$release" ]; do
        if ! kill -0 "$PPID" 2>/dev/null; then
            echo "ERROR: printer went away while holding" >&2
            finish 1 orphaned
        fi
        sleep 0.2 2>/dev/null || sleep 1
    done
    rm -f -- "$release"
}

if [ ! -r "$spool" ]; then
    echo "ERROR: cannot read spool file $spool" >&2
    finish 1 no-spool-file
fi

case $mode in
ok)
    echo "INFO: printed $(basename -- "$spool")" >&2
    finish 0 completed
    ;;
fail)
    echo "ERROR: simulated engine failure" >&2
    finish 1 failed
    ;;
media-empty)
    echo "STATE: +media-empty" >&2
    echo "ERROR: out of paper" >&2
    finish 1 media-empty
    ;;
toner-low)
    echo "STATE: +toner-low" >&2
    echo "INFO: printed $(basename -- "$spool"), toner is low" >&2
    finish 0 completed
    ;;
clear)
    echo "STATE: none" >&2
    echo "INFO: printed $(basename -- "$spool"), conditions cleared" >&2
    finish 0 completed
    ;;
slow)
    case $arg in
    '' | *[!0-9]*)
        echo "ERROR: mode 'slow' needs a whole number of seconds, got '$arg'" >&2
        finish 1 bad-mode
        ;;
    esac
    echo "INFO: printing slowly ($arg s)" >&2
    sleep "$arg"
    finish 0 completed
    ;;
stop)
    case $arg in
    '' | *[!a-z-]*)
        echo "ERROR: mode 'stop' needs a printer-state-reason keyword, got '$arg'" >&2
        finish 1 bad-mode
        ;;
    esac
    echo "STATE: +$arg" >&2
    wait_release
    echo "STATE: -$arg" >&2
    finish 0 completed
    ;;
hold)
    echo "INFO: holding until $spool_dir/RELEASE exists" >&2
    wait_release
    finish 0 completed
    ;;
*)
    echo "ERROR: unknown engine mode '$mode'" >&2
    finish 1 bad-mode
    ;;
esac
