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
      setBuild(event.status);
      if (Gantry.isTerminal(event.status)) syncPage();
      return;
    }
    setNode(event.step, event.status);
    if (step && step.getAttribute("data-step") === event.step) {
      step.setAttribute("data-status", event.status);
      Gantry.setStatus(document.getElementById("step-status"), event.status);
    }
  }, syncPage);

  function setBuild(status) {
    if (!status) return;
    build.setAttribute("data-status", status);
    Gantry.setStatus(document.getElementById("build-status"), status);
    if (Gantry.isTerminal(status)) showReload();
  }

  function setNode(name, status) {
    var node = nodeOf(name);
    if (!node || !status) return;
    node.setAttribute("data-status", status);
    var title = node.querySelector("title");
    if (title) title.textContent = name + ": " + status;
  }

  // Events sent between this page's rendering and its event socket opening are not seen:
  // each time the socket opens, and once the build ended, the build's status and the graph
  // are read again from the page. A status already final is never taken back by an older
  // page (an event may have overtaken the fetch).
  function syncPage() {
    fetch(location.pathname + location.search, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        if (!html) return;
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("build");
        if (fresh && !final(build)) setBuild(fresh.getAttribute("data-status"));
        page.querySelectorAll("#graph g.node").forEach(function (node) {
          var name = node.getAttribute("data-step");
          var here = nodeOf(name);
          if (here && !final(here)) setNode(name, node.getAttribute("data-status"));
        });
      })
      .catch(function () { /* the refresh link still shows everything */ });
  }

  function final(element) {
    return Gantry.isTerminal(element.getAttribute("data-status"));
  }

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
