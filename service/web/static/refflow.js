/* refflow pages: auto-refresh of [data-poll-url] regions, focus on error summaries, and
   a folded section opened when a link leads into it.
   No inline script anywhere, so a strict Content-Security-Policy holds. */
(function () {
  "use strict";

  function poll(region) {
    var url = region.getAttribute("data-poll-url");
    var seconds = parseFloat(region.getAttribute("data-poll-seconds") || "10");
    var busy = false;

    function tick() {
      if (busy || document.hidden || !region.getAttribute("data-poll-url")) { return; }
      // never replace what the user is working in
      if (region.contains(document.activeElement) && document.activeElement !== document.body) { return; }
      busy = true;
      fetch(url, {credentials: "same-origin", headers: {"X-Refflow-Poll": "1"}, cache: "no-store"})
        .then(function (response) {
          if (response.status === 401 || (response.redirected && /\/login/.test(response.url))) {
            window.location.assign("/login");
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            region.innerHTML = html;
            var done = region.querySelector("[data-poll-stop]");
            if (done) { region.removeAttribute("data-poll-url"); }
          }
        })
        .catch(function () { /* offline for a moment: try again next time */ })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, Math.max(2, seconds) * 1000);
  }

  // a link to a folded section (the referral page's "On this page", #delivery-…)
  // opens it, as a click on its title would
  function openFold() {
    var id = window.location.hash.slice(1);
    var target = id && document.getElementById(decodeURIComponent(id));
    var fold = target && target.closest(".fold");
    var details = fold && fold.querySelector("details");
    if (details && !details.open) {
      details.open = true;
      target.scrollIntoView();
    }
  }
  window.addEventListener("hashchange", openFold);
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[href^='#']");
    if (link) { window.setTimeout(openFold, 0); }  // the same link again: no hashchange
  });

  document.addEventListener("DOMContentLoaded", function () {
    openFold();
    var regions = document.querySelectorAll("[data-poll-url]");
    for (var i = 0; i < regions.length; i++) { poll(regions[i]); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
  });
})();
