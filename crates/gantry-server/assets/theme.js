// Sets the theme before the page paints: the saved choice, else the system's preference.
(function () {
  var theme = null;
  try { theme = localStorage.getItem("gantry-theme"); } catch (e) { /* storage off */ }
  if (theme !== "light" && theme !== "dark") {
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    theme = dark ? "dark" : "light";
  }
  document.documentElement.setAttribute("data-theme", theme);
})();
