// Plumbline console behaviour. No inline script anywhere (the Content-Security-Policy
// forbids it): pages declare behaviour with data attributes, this file wires them up.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every HTMX request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
  });

  // Forms that submit when a select changes (the language choice, filters).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.matches && target.matches("[data-submit-on-change]")) {
      target.form.requestSubmit ? target.form.requestSubmit() : target.form.submit();
    }
  });

  // Buttons and forms that ask before they act.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Keyboard shortcuts: an element with data-shortcut="k" is clicked (or focused, for
  // fields) when k is pressed outside a text field.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    var typing = active && (active.tagName === "TEXTAREA" || active.tagName === "SELECT" ||
      (active.tagName === "INPUT" && !/^(radio|checkbox|button|submit)$/.test(active.type)));
    if (typing) return;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    var element = document.querySelector('[data-shortcut="' + key.replace(/"/g, "") + '"]');
    if (!element || element.disabled) return;
    event.preventDefault();
    if (element.matches("input[type=radio], input[type=checkbox], button, a")) {
      element.click();
      element.focus();
    } else {
      element.focus();
    }
  });

  // Charts: <canvas data-chart='{"type": ..., "data": ..., "options": ...}'> (Chart.js
  // configuration as JSON). Drawn on load and after every HTMX swap.
  function drawCharts(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var config = JSON.parse(canvas.getAttribute("data-chart"));
      config.options = config.options || {};
      config.options.animation = false;
      config.options.responsive = true;
      config.options.maintainAspectRatio = false;
      if (window.PlumblineCharts) window.PlumblineCharts.prepare(config);
      new window.Chart(canvas, config);
      canvas.dataset.drawn = "1";
    });
  }
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:load", function (event) { drawCharts(event.target); });
})();
