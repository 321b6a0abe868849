// Shows when the page was loaded: a reload answered with 304 still runs this script.
(function () {
  "use strict";
  var clock = document.getElementById("clock");
  if (!clock) {
    return;
  }
  var loaded = new Date();
  clock.textContent = "Loaded at " + loaded.toLocaleTimeString() + ".";
})();
