// Progressive enhancement for the portal's forms (they work without it):
// dependent selects (university -> faculty -> department), image previews,
// and on the order form: another student ID reloads its certificates, only
// the payments the delivery takes are offered, and the postal address only
// for delivery by post.
(function () {
  function link(parentId, childId) {
    var parent = document.getElementById(parentId), child = document.getElementById(childId);
    if (!parent || !child) return;
    var all = Array.prototype.slice.call(child.options);
    function filter() {
      var v = parent.value, keep = child.value;
      while (child.options.length) child.remove(0);
      all.forEach(function (o) {
        if (!o.dataset.parent || o.dataset.parent === v) child.add(o);
      });
      child.value = keep;
      if (child.value !== keep) child.value = "";
      child.dispatchEvent(new Event("change"));
    }
    parent.addEventListener("change", filter);
    filter();
  }
  link("university_id", "faculty_id");
  link("faculty_id", "department_id");
  Array.prototype.forEach.call(document.querySelectorAll("input[type=file][data-preview]"), function (input) {
    input.addEventListener("change", function () {
      var img = document.getElementById(input.dataset.preview);
      if (!img) return;
      if (input.files && input.files[0]) {
        img.src = URL.createObjectURL(input.files[0]);
        img.hidden = false;
      } else {
        img.hidden = true;
      }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("select[data-autosubmit]"), function (select) {
    select.addEventListener("change", function () {
      var form = document.getElementById(select.dataset.autosubmit);
      if (form) form.submit();
    });
  });
  var delivery = document.getElementById("delivery"), payment = document.getElementById("payment_method");
  if (delivery && payment) {
    var options = Array.prototype.slice.call(payment.options);
    var sync = function () {
      var d = delivery.value, keep = payment.value;
      while (payment.options.length) payment.remove(0);
      options.forEach(function (o) {
        if ((o.dataset.deliveries || "").split(" ").indexOf(d) >= 0) payment.add(o);
      });
      payment.value = keep;
      if (payment.value !== keep && payment.options.length) payment.value = payment.options[0].value;
      Array.prototype.forEach.call(document.querySelectorAll("[data-show-for]"), function (el) {
        el.hidden = el.dataset.showFor !== d;
      });
      Array.prototype.forEach.call(document.querySelectorAll("[data-show-for-payment]"), function (el) {
        el.hidden = el.dataset.showForPayment !== payment.value;
      });
    };
    delivery.addEventListener("change", sync);
    payment.addEventListener("change", sync);
    sync();
  }
})();
