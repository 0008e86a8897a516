// The overview's charts: interval whiskers. Chart.js has no error bars, so a dataset may
// carry "whiskers": [[low, high], ...] (one pair per point, in the data's unit) and this
// plugin draws a vertical line with caps for each. Registered through
// window.PlumblineCharts.prepare, which console.js calls for every canvas[data-chart].
(function () {
  "use strict";

  var whiskerPlugin = {
    id: "whiskers",
    afterDatasetsDraw: function (chart, args, options) {
      var context = chart.ctx;
      var scale = chart.scales.y;
      if (!scale) return;
      chart.data.datasets.forEach(function (dataset, index) {
        if (!dataset.whiskers || !chart.isDatasetVisible(index)) return;
        var meta = chart.getDatasetMeta(index);
        context.save();
        context.strokeStyle = (options && options.color) || "#1b1f24";
        context.lineWidth = 1.5;
        meta.data.forEach(function (element, point) {
          var pair = dataset.whiskers[point];
          if (!pair || pair[0] === null || pair[1] === null) return;
          var x = element.x;
          var top = scale.getPixelForValue(pair[1]);
          var bottom = scale.getPixelForValue(pair[0]);
          var cap = 6;
          context.beginPath();
          context.moveTo(x, top);
          context.lineTo(x, bottom);
          context.moveTo(x - cap, top);
          context.lineTo(x + cap, top);
          context.moveTo(x - cap, bottom);
          context.lineTo(x + cap, bottom);
          context.stroke();
        });
        context.restore();
      });
    }
  };

  var previous = window.PlumblineCharts;
  window.PlumblineCharts = {
    whiskerPlugin: whiskerPlugin,
    prepare: function (config) {
      if (previous && typeof previous.prepare === "function") previous.prepare(config);
      var datasets = (config.data && config.data.datasets) || [];
      var wanted = datasets.some(function (dataset) { return Array.isArray(dataset.whiskers); });
      if (wanted) {
        config.plugins = (config.plugins || []).concat([whiskerPlugin]);
      }
      return config;
    }
  };
})();
