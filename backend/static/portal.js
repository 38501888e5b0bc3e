// Progressive enhancement for the portal's forms (they work without it):
// dependent selects (university -> faculty -> department) and image previews.
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
})();
