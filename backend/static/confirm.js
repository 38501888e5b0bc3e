// Buttons marked data-confirm ask before they act: approving an application,
// cancelling or refunding an order, revoking a certificate or a station.
// (The server checks everything itself; this only stops a slip of the finger.)
document.addEventListener('click', function (event) {
  var button = event.target.closest && event.target.closest('[data-confirm]');
  if (button && !window.confirm(button.getAttribute('data-confirm'))) {
    event.preventDefault();
  }
});
