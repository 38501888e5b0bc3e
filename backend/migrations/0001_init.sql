-- shomei backend schema, first cut. Times are unix seconds (UTC); money is integer yen.

CREATE TABLE universities (
    id INTEGER PRIMARY KEY,
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL,
    timezone TEXT NOT NULL DEFAULT 'Asia/Tokyo',
    system_fee INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE faculties (
    id INTEGER PRIMARY KEY,
    university_id INTEGER NOT NULL REFERENCES universities(id),
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL
);

CREATE TABLE departments (
    id INTEGER PRIMARY KEY,
    faculty_id INTEGER NOT NULL REFERENCES faculties(id),
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL
);

CREATE TABLE certificate_types (
    id INTEGER PRIMARY KEY,
    university_id INTEGER NOT NULL REFERENCES universities(id),
    code TEXT NOT NULL,
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL,
    fee INTEGER NOT NULL CHECK (fee >= 0),
    max_copies INTEGER NOT NULL DEFAULT 10 CHECK (max_copies > 0),
    leaving_types TEXT NOT NULL DEFAULT 'graduated',
    active INTEGER NOT NULL DEFAULT 1,
    UNIQUE (university_id, code)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('graduate', 'student')),
    password_hash TEXT NOT NULL,
    second_password_hash TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'locked')),
    language TEXT NOT NULL DEFAULT 'ja',
    created_at INTEGER NOT NULL
);

-- One row per enrolment (student ID) of a user: the data certificates show.
CREATE TABLE student_records (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    university_id INTEGER NOT NULL REFERENCES universities(id),
    faculty_id INTEGER NOT NULL REFERENCES faculties(id),
    department_id INTEGER NOT NULL REFERENCES departments(id),
    student_no TEXT NOT NULL,
    name_kanji TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    name_roman TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    leaving_type TEXT NOT NULL CHECK (leaving_type IN ('graduated', 'withdrew', 'removed', 'enrolled')),
    graduation_date TEXT
);

CREATE TABLE staff (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('registrar', 'operator', 'admin')),
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER REFERENCES users(id),
    staff_id INTEGER REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK ((user_id IS NULL) <> (staff_id IS NULL))
);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    student_record_id INTEGER NOT NULL REFERENCES student_records(id),
    delivery TEXT NOT NULL CHECK (delivery IN ('campus', 'store', 'post')),
    payment_method TEXT NOT NULL CHECK (payment_method IN ('card', 'paypal', 'smartpit')),
    status TEXT NOT NULL CHECK (status IN ('awaiting_payment', 'paid', 'printed', 'expired', 'cancelled', 'held')),
    fees INTEGER NOT NULL,
    system_fee INTEGER NOT NULL,
    total INTEGER NOT NULL,
    print_number TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    pay_deadline INTEGER NOT NULL,
    print_deadline INTEGER NOT NULL,
    paid_at INTEGER,
    printed_at INTEGER,
    pages INTEGER NOT NULL DEFAULT 0,
    pdf BLOB
);

CREATE TABLE order_lines (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    certificate_type_id INTEGER NOT NULL REFERENCES certificate_types(id),
    name_ja TEXT NOT NULL,
    name_en TEXT NOT NULL,
    unit_fee INTEGER NOT NULL,
    copies INTEGER NOT NULL CHECK (copies > 0),
    amount INTEGER NOT NULL
);

-- Each copy is its own certificate with its own serial and verification code.
CREATE TABLE certificates (
    id INTEGER PRIMARY KEY,
    order_line_id INTEGER NOT NULL REFERENCES order_lines(id),
    serial TEXT NOT NULL UNIQUE,
    verification_code TEXT NOT NULL UNIQUE,
    issued_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Stored value (P-2): a balance is the sum of the ledger, never an overwritten number.
CREATE TABLE ic_cards (
    uid TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    label TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    linked_at INTEGER NOT NULL
);

CREATE TABLE ledger (
    id INTEGER PRIMARY KEY,
    card_uid TEXT NOT NULL REFERENCES ic_cards(uid),
    amount INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'debit', 'refund', 'adjustment')),
    order_id INTEGER REFERENCES orders(id),
    station_id INTEGER REFERENCES stations(id),
    idempotency_key TEXT UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE stations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'revoked')),
    created_at INTEGER NOT NULL,
    enrolled_at INTEGER,
    last_seen INTEGER,
    version TEXT,
    printer_reachable INTEGER,
    printer_state TEXT,
    printer_reasons TEXT,
    printer_message TEXT,
    reader_present INTEGER,
    outbox_len INTEGER,
    clock_skew_s INTEGER
);

CREATE TABLE enrolment_codes (
    code_hash TEXT PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    created_by INTEGER REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE reservations (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    station_id INTEGER NOT NULL REFERENCES stations(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'printed', 'failed', 'released'))
);

-- What stations reported, keyed by their idempotency keys (ST-5).
CREATE TABLE station_reports (
    idempotency_key TEXT PRIMARY KEY,
    station_id INTEGER NOT NULL REFERENCES stations(id),
    reservation_id INTEGER NOT NULL REFERENCES reservations(id),
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    ipp_job_id INTEGER,
    station_time INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at INTEGER,
    last_error TEXT
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);

CREATE INDEX ledger_card ON ledger(card_uid);
CREATE INDEX orders_user ON orders(user_id);
CREATE INDEX reservations_order ON reservations(order_id);
CREATE INDEX outbox_pending ON outbox(sent_at, next_attempt_at);
