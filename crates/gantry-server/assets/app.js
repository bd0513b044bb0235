// Shared by every page: theme toggle, copy and reveal buttons, websocket helpers.
"use strict";

window.Gantry = (function () {
  /** The websocket URL of a path on this server. */
  function socketUrl(path) {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + path;
  }

  /** Sets a status badge (`span.status`) to a status. */
  function setStatus(element, status) {
    if (!element) return;
    element.setAttribute("data-status", status);
    element.textContent = status;
  }

  /** Follows /ui/events, calling `onEvent` with each event; reconnects after a drop. */
  /** Calls `onEvent` for every event, and `onOpen` (if given) each time the socket opens:
   *  events sent before that were not seen, so a page re-reads what they would have said. */
  function followEvents(onEvent, onOpen) {
    var delay = 1000;
    function open() {
      var socket = new WebSocket(socketUrl("/ui/events"));
      socket.onopen = function () {
        delay = 1000;
        if (onOpen) onOpen();
      };
      socket.onmessage = function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (e) { return; }
        if (event && event.kind) onEvent(event);
      };
      socket.onclose = function () {
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      };
    }
    open();
  }

  var TERMINAL = ["success", "failure", "killed", "error", "skipped"];

  return {
    socketUrl: socketUrl,
    setStatus: setStatus,
    followEvents: followEvents,
    isTerminal: function (status) { return TERMINAL.indexOf(status) >= 0; },
  };
})();

document.addEventListener("DOMContentLoaded", function () {
  var toggle = document.getElementById("theme-toggle");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var root = document.documentElement;
      var next = root.getAttribute("data-theme") === "dark" ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("gantry-theme", next); } catch (e) { /* storage off */ }
    });
  }
  document.querySelectorAll("button.copy").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done);
      } else {
        var type = field.type;
        field.type = "text";
        field.select();
        document.execCommand("copy");
        field.type = type;
        done();
      }
    });
  });
  document.querySelectorAll("button.reveal").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-reveal"));
      if (!field) return;
      var hidden = field.type === "password";
      field.type = hidden ? "text" : "password";
      button.textContent = hidden ? "Hide" : "Show";
    });
  });
});
