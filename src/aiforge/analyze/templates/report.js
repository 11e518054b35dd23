// Dive-like scatter of sampled rows on a <canvas>, coloured by the label; the axes are chosen with two selects.
// Plain canvas instead of a charting library: the page must open in well under two seconds, and parsing a
// multi-megabyte library alone takes longer than that on a small machine.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("scatter-data").textContent);
  var names = Object.keys(data.columns);
  var kinds = data.kinds || {};
  var xs = document.getElementById("x-axis"), ys = document.getElementById("y-axis");
  var canvas = document.getElementById("scatter"), legend = document.getElementById("legend");
  var tip = document.getElementById("tip");
  var palette = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
    "#9d755d", "#bab0ac"];
  var margin = { l: 70, r: 16, t: 12, b: 46 };
  var state = { drawn: 0, px: [], py: [], rows: [] };
  window.aiforgeScatter = state;

  function done() { window.aiforgeReady = true; document.body.setAttribute("data-ready", "1"); }

  function axis(name) {
    // Map a column to numbers: numbers stay, datetimes become epoch ms, categories become their rank (+ jitter).
    var raw = data.columns[name], kind = kinds[name] || "numeric", out = new Array(raw.length);
    var categories = null;
    if (kind === "categorical" || kind === "boolean") {
      var seen = {};
      raw.forEach(function (v) { if (v !== null) { seen[String(v)] = true; } });
      categories = Object.keys(seen).sort();
      var index = {};
      categories.forEach(function (c, i) { index[c] = i; });
      for (var i = 0; i < raw.length; i++) {
        // deterministic jitter so that points of one category do not all sit on one line
        out[i] = raw[i] === null ? null : index[String(raw[i])] + (((i * 2654435761) % 1000) / 1000 - 0.5) * 0.6;
      }
    } else {
      for (var j = 0; j < raw.length; j++) {
        var v = raw[j];
        out[j] = v === null ? null : (kind === "datetime" ? Date.parse(v) : Number(v));
        if (out[j] !== null && !isFinite(out[j])) { out[j] = null; }
      }
    }
    var lo = Infinity, hi = -Infinity;
    out.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (categories) { lo = -0.5; hi = categories.length - 0.5; }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    var pad = categories ? 0 : (hi - lo) * 0.03;
    return { values: out, lo: lo - pad, hi: hi + pad, kind: kind, categories: categories, name: name };
  }

  function ticks(ax) {
    if (ax.categories) {
      var step = Math.max(1, Math.ceil(ax.categories.length / 12));
      return ax.categories.map(function (c, i) { return [i, c]; }).filter(function (_, i) { return i % step === 0; });
    }
    var span = ax.hi - ax.lo, raw = span / 6, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var step2 = [1, 2, 5, 10].map(function (m) { return m * mag; }).find(function (s) { return s >= raw; });
    var out = [];
    for (var t = Math.ceil(ax.lo / step2) * step2; t <= ax.hi; t += step2) {
      var label = ax.kind === "datetime" ? new Date(t).toISOString().slice(0, 10) : Number(t.toPrecision(6)).toString();
      out.push([t, label]);
    }
    return out;
  }

  function colours() {
    if (!data.label) { return { of: function () { return palette[0]; }, entries: [] }; }
    var raw = data.columns[data.label];
    var distinct = {};
    raw.forEach(function (v) { distinct[String(v)] = (distinct[String(v)] || 0) + 1; });
    var classes = Object.keys(distinct);
    var numeric = raw.every(function (v) { return v === null || typeof v === "number"; });
    if (numeric && classes.length > 10) {
      var lo = Infinity, hi = -Infinity;
      raw.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
      return {
        of: function (i) {
          var f = raw[i] === null ? 0 : (raw[i] - lo) / ((hi - lo) || 1);
          return "hsl(" + Math.round(240 - 200 * f) + ",70%,45%)";
        },
        entries: [[data.label + " " + lo.toPrecision(4), "hsl(240,70%,45%)"], [hi.toPrecision(4), "hsl(40,70%,45%)"]]
      };
    }
    classes.sort(function (a, b) { return distinct[b] - distinct[a]; });
    var colour = {};
    classes.forEach(function (c, i) { colour[c] = i < 10 ? palette[i] : "#999999"; });
    return {
      of: function (i) { return colour[String(raw[i])]; },
      entries: classes.slice(0, 10).map(function (c) { return [data.label + " = " + c, colour[c]]; })
        .concat(classes.length > 10 ? [["other classes", "#999999"]] : [])
    };
  }

  function draw() {
    var ratio = window.devicePixelRatio || 1, width = canvas.clientWidth, height = canvas.clientHeight;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    var ax = axis(xs.value), ay = axis(ys.value), col = colours();
    var w = width - margin.l - margin.r, h = height - margin.t - margin.b;
    function sx(v) { return margin.l + (v - ax.lo) / (ax.hi - ax.lo) * w; }
    function sy(v) { return margin.t + h - (v - ay.lo) / (ay.hi - ay.lo) * h; }
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5a6377";
    ctx.strokeStyle = "#e6e8ee";
    ctx.textAlign = "center";
    ticks(ax).forEach(function (t) {
      var x = sx(t[0]);
      ctx.beginPath(); ctx.moveTo(x, margin.t); ctx.lineTo(x, margin.t + h); ctx.stroke();
      ctx.fillText(String(t[1]).slice(0, 14), x, margin.t + h + 14);
    });
    ctx.textAlign = "right";
    ticks(ay).forEach(function (t) {
      var y = sy(t[0]);
      ctx.beginPath(); ctx.moveTo(margin.l, y); ctx.lineTo(margin.l + w, y); ctx.stroke();
      ctx.fillText(String(t[1]).slice(0, 12), margin.l - 6, y + 4);
    });
    ctx.textAlign = "center";
    ctx.fillText(ax.name, margin.l + w / 2, height - 8);
    ctx.save(); ctx.translate(14, margin.t + h / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(ay.name, 0, 0); ctx.restore();
    state.px = []; state.py = []; state.rows = [];
    ctx.globalAlpha = 0.7;
    for (var i = 0; i < ax.values.length; i++) {
      if (ax.values[i] === null || ay.values[i] === null) { continue; }
      var px = sx(ax.values[i]), py = sy(ay.values[i]);
      ctx.fillStyle = col.of(i);
      ctx.fillRect(px - 2, py - 2, 4, 4);
      state.px.push(px); state.py.push(py); state.rows.push(i);
    }
    ctx.globalAlpha = 1;
    state.drawn = state.rows.length;
    state.x = xs.value; state.y = ys.value;
    legend.innerHTML = "";
    col.entries.forEach(function (e) {
      var item = document.createElement("span");
      var dot = document.createElement("i");
      dot.style.background = e[1];
      item.appendChild(dot);
      item.appendChild(document.createTextNode(e[0]));
      legend.appendChild(item);
    });
  }

  function hover(event) {
    var box = canvas.getBoundingClientRect(), mx = event.clientX - box.left, my = event.clientY - box.top;
    var best = -1, bestD = 49;
    for (var k = 0; k < state.px.length; k++) {
      var d = (state.px[k] - mx) * (state.px[k] - mx) + (state.py[k] - my) * (state.py[k] - my);
      if (d < bestD) { bestD = d; best = k; }
    }
    if (best < 0) { tip.style.display = "none"; return; }
    var row = state.rows[best];
    tip.textContent = names.map(function (n) { return n + ": " + data.columns[n][row]; }).join("\n");
    tip.style.left = (event.pageX + 12) + "px";
    tip.style.top = (event.pageY + 12) + "px";
    tip.style.display = "block";
  }

  if (!names.length) {
    canvas.style.display = "none";
    done();
    return;
  }
  var choices = names.filter(function (n) { return n !== data.label; });
  if (!choices.length) { choices = names; }
  choices.forEach(function (n) { xs.add(new Option(n, n)); ys.add(new Option(n, n)); });
  xs.value = choices[0];
  ys.value = choices.length > 1 ? choices[1] : choices[0];
  xs.addEventListener("change", draw);
  ys.addEventListener("change", draw);
  canvas.addEventListener("mousemove", hover);
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  window.addEventListener("resize", draw);
  draw();
  done();
})();
