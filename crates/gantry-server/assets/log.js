// The step log of a build page. The server renders the first lines; this script fetches
// the rest in pages and appends them in animation-frame batches (the page stays usable
// while a 100,000-line log loads), then follows the live stream from the last line it
// has (`?after=N`: no gap, no duplicate). Text only ever goes in through textContent.
// Lines sit in chunks of CHUNK lines (`div.log-chunk`, `content-visibility: auto`): the
// browser lays out and paints only the chunks in view, so appending stays cheap however
// long the log grows.
"use strict";

window.GantryLog = (function () {
  var PAGE = 5000;        // lines per fetch
  var BATCH = 2000;       // lines appended per animation frame
  var CHUNK = 1000;       // lines per div.log-chunk (as the server renders the first ones)
  var ERROR_WORD = /(^|[^a-z0-9])(error|failed|fatal|panic)/i;

  /** Splits a line into [classes, text] runs: SGR colours and bold kept, the rest dropped. */
  function segments(line) {
    var parts = line.split("\r");
    for (var p = parts.length - 1; p >= 0; p--) { if (parts[p] !== "") { line = parts[p]; break; } }
    if (p < 0) line = "";
    var out = [], colour = null, bold = false, text = "";
    function push() {
      if (!text) return;
      var cls = colour === null ? "" : "c" + colour;
      if (bold) cls = cls ? cls + " b" : "b";
      var last = out[out.length - 1];
      if (last && last[0] === cls) last[1] += text; else out.push([cls, text]);
      text = "";
    }
    function apply(params) {
      var list = params.split(/[;:]/);
      for (var i = 0; i < list.length; i++) {
        var n = parseInt(list[i], 10) || 0;
        if (n === 38 || n === 48 || n === 58) {
          var mode = list[i + 1];
          i += mode === "5" ? 2 : mode === "2" ? 4 : 1;
        } else if (n === 0) { colour = null; bold = false; }
        else if (n === 1) bold = true;
        else if (n === 22) bold = false;
        else if (n === 39) colour = null;
        else if (n >= 30 && n <= 37) colour = n - 30;
        else if (n >= 90 && n <= 97) colour = n - 90 + 8;
      }
    }
    for (var i = 0; i < line.length; i++) {
      var c = line.charCodeAt(i);
      if (c === 27) {
        var next = line[i + 1];
        if (next === "[") {
          var j = i + 2, params = "";
          while (j < line.length && !(line.charCodeAt(j) >= 0x40 && line.charCodeAt(j) <= 0x7e)) params += line[j++];
          if (line[j] === "m") { push(); apply(params); }
          i = j;
        } else if (next === "]") {
          var k = i + 2;
          while (k < line.length && line.charCodeAt(k) !== 7 && !(line.charCodeAt(k) === 27 && line[k + 1] === "\\")) k++;
          i = line.charCodeAt(k) === 27 ? k + 1 : k;
        } else {
          i += 1;
        }
      } else if (c === 9 || (c >= 32 && c !== 127 && !(c >= 0x80 && c < 0xa0))) {
        text += line[i];
      }
    }
    push();
    return out;
  }

  function plain(line) {
    return segments(line).map(function (s) { return s[1]; }).join("");
  }

  /** A line that reads like an error (the rule of the server's `looks_like_error`). */
  function isErrorLine(line) {
    return ERROR_WORD.test(plain(line));
  }

  /** One `div.log-line` built from text nodes only. */
  function lineNode(number, text) {
    var row = document.createElement("div");
    row.className = "log-line";
    row.id = "L" + number;
    var link = document.createElement("a");
    link.className = "line-number";
    link.href = "#L" + number;
    link.textContent = String(number);
    var body = document.createElement("span");
    body.className = "line-text";
    segments(text).forEach(function (seg) {
      if (!seg[0]) { body.appendChild(document.createTextNode(seg[1])); return; }
      var span = document.createElement("span");
      span.className = seg[0];
      span.textContent = seg[1];
      body.appendChild(span);
    });
    row.appendChild(link);
    row.appendChild(body);
    return row;
  }

  return { segments: segments, plain: plain, isErrorLine: isErrorLine, lineNode: lineNode, PAGE: PAGE, BATCH: BATCH, CHUNK: CHUNK };
})();

document.addEventListener("DOMContentLoaded", function () {
  var log = document.getElementById("log");
  if (!log) return;
  var L = window.GantryLog;
  var fetched = Number(log.getAttribute("data-last")) || 0;  // last line fetched or streamed
  var firstError = Number(log.getAttribute("data-first-error")) || 0;
  var buildStatus = (document.getElementById("build") || log).getAttribute("data-status");
  var jumpWanted = (buildStatus === "failure" || buildStatus === "error") && !location.hash && firstError > 0;
  var hashWanted = location.hash.match(/^#L(\d+)$/) ? location.hash.slice(1) : null;
  var pending = [];
  var scheduled = false;
  var follow = true;   // keep the newest line in view while the step runs
  var followButton = document.getElementById("log-follow");
  var jumpLink = document.getElementById("log-first-error");
  var empty = document.getElementById("log-empty");

  function atBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  function markFirstError(number, jump) {
    var node = document.getElementById("L" + number);
    if (!node) return false;
    node.classList.add("first-error");
    if (jumpLink) { jumpLink.href = "#L" + number; jumpLink.classList.remove("hidden"); }
    if (jump) { node.scrollIntoView({ block: "center" }); }
    return true;
  }

  function settle() {
    if (firstError > 0 && markFirstError(firstError, jumpWanted)) jumpWanted = false;
    if (hashWanted) {
      var target = document.getElementById(hashWanted);
      if (target) {
        // A line fetched after the page loaded is not the document's :target: mark it.
        target.classList.add("targeted");
        target.scrollIntoView({ block: "center" });
        hashWanted = null;
        follow = false;
      }
    }
  }

  function flush() {
    scheduled = false;
    var following = log.getAttribute("data-state") === "following";
    var stick = following && follow && atBottom();
    var batch = pending.splice(0, L.BATCH);
    while (batch.length) {
      var chunk = log.lastElementChild;
      if (!chunk || chunk.childElementCount >= L.CHUNK) {
        chunk = document.createElement("div");
        chunk.className = "log-chunk";
        log.appendChild(chunk);
      }
      var fragment = document.createDocumentFragment();
      batch.splice(0, L.CHUNK - chunk.childElementCount).forEach(function (line) {
        fragment.appendChild(L.lineNode(line.number, line.text));
        if (firstError === 0 && following && L.isErrorLine(line.text)) firstError = line.number;
      });
      chunk.appendChild(fragment);
    }
    if (empty && log.lastElementChild) empty.classList.add("hidden");
    settle();
    if (stick) log.scrollTop = log.scrollHeight;
    if (pending.length) schedule();
  }

  function schedule() {
    if (!scheduled) { scheduled = true; requestAnimationFrame(flush); }
  }

  function take(lines) {
    lines.forEach(function (line) {
      if (typeof line.number !== "number" || line.number <= fetched) return;
      fetched = line.number;
      pending.push(line);
    });
    schedule();
  }

  function loadRest() {
    var url = log.getAttribute("data-lines-url") + "?after=" + fetched + "&limit=" + L.PAGE;
    return fetch(url, { credentials: "same-origin" })
      .then(function (response) { if (!response.ok) throw new Error(String(response.status)); return response.text(); })
      .then(function (body) {
        var lines = body.split("\n").filter(Boolean).map(function (t) { return JSON.parse(t); });
        take(lines);
        if (lines.length >= L.PAGE) return loadRest();
      });
  }

  function ended(status) {
    log.setAttribute("data-state", "done");
    if (followButton) followButton.classList.add("hidden");
    if (status) {
      var step = document.getElementById("step");
      if (step) step.setAttribute("data-status", status);
      Gantry.setStatus(document.getElementById("step-status"), status);
    }
    if (empty && !log.lastElementChild) empty.textContent = "This step wrote no output.";
  }

  function stream(delay) {
    var socket = new WebSocket(Gantry.socketUrl(log.getAttribute("data-stream-url") + "?after=" + fetched));
    var finished = false;
    socket.onmessage = function (message) {
      var frame;
      try { frame = JSON.parse(message.data); } catch (e) { return; }
      if (frame.end) { finished = true; ended(frame.status); return; }
      take([frame]);
    };
    socket.onclose = function () {
      // A dropped stream resumes after the last line held: nothing is lost or repeated.
      if (!finished) setTimeout(function () { stream(Math.min(delay * 2, 30000)); }, delay);
    };
  }

  if (followButton) {
    followButton.addEventListener("click", function () {
      follow = true;
      log.scrollTop = log.scrollHeight;
      followButton.classList.add("hidden");
    });
    log.addEventListener("scroll", function () {
      if (log.getAttribute("data-state") !== "following") return;
      follow = atBottom();
      followButton.classList.toggle("hidden", follow);
    });
  }

  settle();
  loadRest()
    .catch(function () { /* the stream below fills in what the pages missed */ })
    .then(function () {
      if (log.getAttribute("data-state") === "following") stream(1000);
      else if (firstError === 0 && (buildStatus === "failure" || buildStatus === "error")) settle();
    });
});
