// A build page: live status of the build and of each step's graph node.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var build = document.getElementById("build");
  if (!build) return;
  var repo = build.getAttribute("data-repo");
  var number = Number(build.getAttribute("data-number"));
  var step = document.getElementById("step");

  function nodeOf(name) {
    var nodes = document.querySelectorAll("#graph g.node");
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].getAttribute("data-step") === name) return nodes[i];
    }
    return null;
  }

  Gantry.followEvents(function (event) {
    if (event.repo !== repo || Number(event.build) !== number) return;
    if (event.kind === "build") {
      build.setAttribute("data-status", event.status);
      Gantry.setStatus(document.getElementById("build-status"), event.status);
      if (Gantry.isTerminal(event.status)) showReload();
      return;
    }
    var node = nodeOf(event.step);
    if (node) {
      node.setAttribute("data-status", event.status);
      var title = node.querySelector("title");
      if (title) title.textContent = event.step + ": " + event.status;
    }
    if (step && step.getAttribute("data-step") === event.step) {
      step.setAttribute("data-status", event.status);
      Gantry.setStatus(document.getElementById("step-status"), event.status);
    }
  });

  // The buttons of a finished build differ (restart, promote): offer to show them.
  function showReload() {
    if (document.getElementById("build-reload")) return;
    var link = document.createElement("a");
    link.id = "build-reload";
    link.className = "button";
    link.href = location.pathname + location.search;
    link.textContent = "Build ended: refresh";
    var actions = build.querySelector(".actions");
    if (actions) actions.appendChild(link);
  }
});
