// The offline gallery of a runway-archiver archive. Written by hand, no dependencies.
// Rules kept throughout: text from the archive goes into the page as text (textContent or
// append of a string), never as HTML; the only URLs made are relative paths of archived files,
// each segment percent-encoded, so no value can become a javascript: link or leave the folder.
"use strict";
(() => {
  const DATA = window.RUNWAY_GALLERY_DATA;
  const $ = (id) => document.getElementById(id);
  if (!DATA || !Array.isArray(DATA.rows)) {
    $("empty").hidden = false;
    $("empty").textContent = "The gallery's data file is missing: run `runway-archiver gallery`.";
    return;
  }
  const C = Object.fromEntries(DATA.columns.map((name, i) => [name, i]));
  const rows = DATA.rows;
  const STATUSES = ["SUCCEEDED", "FAILED", "CANCELLED"];
  const SORTS = ["newest", "oldest", "longest"];
  const CARD_MIN = 250;
  const GAP = 16;
  const shardData = new Map();
  const shardLoads = new Map();
  let state = null;
  let filterKey = null;
  let results = [];
  let haystack = null;
  let byDir = null;
  let shownWindow = "";
  let openDir = "";
  let typing = null;  // the search box's pending debounce
  // data.js holds the newest rows; data-more.js the rest, loaded once the first are drawn.
  let loading = (DATA.count || 0) > rows.length;

  // -- small helpers ----------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  // A path relative to the archive root as a relative URL, or null if it is not a plain one.
  function fileUrl(path) {
    if (typeof path !== "string" || !path) return null;
    const parts = path.split("/");
    if (parts.some((p) => p === "" || p === "." || p === "..")) return null;
    return parts.map(encodeURIComponent).join("/");
  }

  // A path within the task's folder; one that starts with "/" is within the archive instead.
  function inFolder(row, name) {
    if (typeof name !== "string" || !name) return null;
    return name.startsWith("/") ? fileUrl(name.slice(1)) : fileUrl(`${row[C.dir]}/${name}`);
  }

  function baseName(path) {
    return String(path).split("/").pop();
  }

  function bytes(n) {
    if (typeof n !== "number") return "";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = n;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
      value /= 1000;
      unit += 1;
    }
    return unit === 0 ? `${n} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
  }

  function seconds(s) {
    return typeof s === "number" ? `${s.toFixed(s < 10 ? 1 : 0)} s` : "";
  }

  function when(iso) {
    return typeof iso === "string" ? iso.slice(0, 16).replace("T", " ") : "";
  }

  function facts(row) {
    const out = [row[C.model], when(row[C.created])];
    if (row[C.duration] !== null) out.push(seconds(row[C.duration]));
    if (row[C.width] && row[C.height]) out.push(`${row[C.width]}×${row[C.height]}`);
    if (row[C.seed] !== null) out.push(`seed ${row[C.seed]}`);
    return out.filter(Boolean).join(" · ");
  }

  // -- the state lives in the fragment: #q=cat&model=gen3a&status=FAILED&sort=oldest&task=... --

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const status = p.has("status")
      ? p.get("status").split(",").filter((s) => STATUSES.includes(s))
      : ["SUCCEEDED"];
    const inputs = p.get("inputs");
    const sort = p.get("sort");
    const date = (v) => (/^\d{4}-\d{2}-\d{2}$/.test(v || "") ? v : "");
    return {
      q: p.get("q") || "",
      model: p.get("model") || "",
      status,
      from: date(p.get("from")),
      to: date(p.get("to")),
      inputs: inputs === "with" || inputs === "without" ? inputs : "",
      sort: SORTS.includes(sort) ? sort : "newest",
      task: p.get("task") || "",
    };
  }

  function hashOf(s) {
    const p = new URLSearchParams();
    if (s.q) p.set("q", s.q);
    if (s.model) p.set("model", s.model);
    if (s.status.join(",") !== "SUCCEEDED") p.set("status", s.status.join(","));
    if (s.from) p.set("from", s.from);
    if (s.to) p.set("to", s.to);
    if (s.inputs) p.set("inputs", s.inputs);
    if (s.sort !== "newest") p.set("sort", s.sort);
    if (s.task) p.set("task", s.task);
    const text = p.toString();
    return text ? `#${text}` : location.pathname + location.search;
  }

  function navigate(next, { replace = false, detail = false } = {}) {
    const target = hashOf(next);
    if (replace) history.replaceState(history.state, "", target);
    else history.pushState(detail ? { detail: true } : null, "", target);
    apply();
  }

  function apply() {
    state = readHash();
    syncControls();
    const key = JSON.stringify([state.q, state.model, state.status, state.from, state.to,
      state.inputs, state.sort]);
    if (key !== filterKey) {
      filterKey = key;
      compute();
      shownWindow = "";
      render();
    } else {
      refreshLinks();
    }
    if (state.task) openDetail(state.task);
    else closeDetailView();
  }

  function syncControls() {
    if (typing === null) $("q").value = state.q;  // not while a person is typing in it
    $("model").value = state.model;
    for (const box of $("status").querySelectorAll("input")) {
      box.checked = state.status.includes(box.value);
    }
    $("from").value = state.from;
    $("to").value = state.to;
    $("inputs").value = state.inputs;
    $("sort").value = state.sort;
  }

  // -- filtering and sorting --------------------------------------------------------------

  function compute() {
    const words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length && !haystack) {
      haystack = rows.map((r) => `${r[C.name] || ""}\n${r[C.prompt] || ""}`.toLowerCase());
    }
    const statuses = new Set(state.status);
    const out = [];
    for (let i = 0; i < rows.length; i += 1) {
      const r = rows[i];
      if (!statuses.has(r[C.status] || "SUCCEEDED")) continue;
      if (state.model && r[C.model] !== state.model) continue;
      const day = (r[C.created] || "").slice(0, 10);
      if (state.from && !(day >= state.from)) continue;
      if (state.to && !(day <= state.to)) continue;
      if (state.inputs === "with" && !r[C.inputs]) continue;
      if (state.inputs === "without" && r[C.inputs]) continue;
      if (words.length && !words.every((w) => haystack[i].includes(w))) continue;
      out.push(i);
    }
    // The data file comes newest first: only "longest" needs a real sort.
    if (state.sort === "oldest") out.reverse();
    if (state.sort === "longest") {
      out.sort((a, b) => (rows[b][C.duration] || 0) - (rows[a][C.duration] || 0) || a - b);
    }
    results = out;
    const total = Math.max(rows.length, DATA.count || 0).toLocaleString("en");
    $("count").textContent = loading
      ? `${out.length.toLocaleString("en")} of the newest ${rows.length} (loading all ${total})…`
      : `${out.length.toLocaleString("en")} of ${total} tasks`;
    $("count").dataset.n = String(out.length);
    $("empty").hidden = out.length > 0;
  }

  // -- the grid: only the rows on screen are in the page, so 100,000 tasks scroll smoothly --

  function geometry() {
    const width = $("results").clientWidth;
    const cols = Math.max(1, Math.floor((width + GAP) / (CARD_MIN + GAP)));
    const cardHeight = parseFloat(getComputedStyle($("results")).getPropertyValue("--card-h")) || 320;
    return { cols, rowHeight: cardHeight + GAP };
  }

  function render() {
    const { cols, rowHeight } = geometry();
    const lines = Math.ceil(results.length / cols);
    const box = $("results");
    box.style.height = `${Math.max(0, lines * rowHeight - GAP)}px`;
    const top = box.getBoundingClientRect().top;
    const first = Math.max(0, Math.floor(-top / rowHeight) - 2);
    const last = Math.min(lines - 1, Math.ceil((window.innerHeight - top) / rowHeight) + 2);
    const key = `${first}:${last}:${cols}`;
    if (key === shownWindow) return;
    shownWindow = key;
    const cards = $("cards");
    cards.style.transform = `translateY(${first * rowHeight}px)`;
    cards.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
    const nodes = [];
    for (let n = first * cols; n < Math.min(results.length, (last + 1) * cols); n += 1) {
      nodes.push(card(results[n]));
    }
    cards.replaceChildren(...nodes);
  }

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      render();
    });
  }

  function refreshLinks() {
    for (const node of $("cards").children) {
      node.setAttribute("href", hashOf({ ...state, task: rows[node.dataset.i][C.dir] }));
    }
  }

  function card(i) {
    const r = rows[i];
    const thumb = inFolder(r, r[C.thumb]);
    const failed = (r[C.status] || "SUCCEEDED") !== "SUCCEEDED";
    const picture = el("div", { class: "thumb" },
      thumb ? el("img", { src: thumb, alt: "", loading: "lazy", decoding: "async" }) : null,
      r[C.duration] !== null ? el("span", { class: "badge" }, seconds(r[C.duration])) : null,
      failed ? el("span", { class: "badge status" }, r[C.status]) : null);
    const node = el("a", { class: failed ? "card failed" : "card", "data-i": i,
      href: hashOf({ ...state, task: r[C.dir] }) },
      picture,
      el("div", { class: "name" }, r[C.name] || r[C.dir]),
      el("div", { class: "prompt" }, r[C.prompt] || ""),
      el("div", { class: "facts" }, facts(r)),
      failed && r[C.error] ? el("div", { class: "error" }, r[C.error]) : null);
    if (r[C.video]) {
      node.addEventListener("mouseenter", () => preview(node, r, true));
      node.addEventListener("mouseleave", () => preview(node, r, false));
      node.addEventListener("focus", () => preview(node, r, true));
      node.addEventListener("blur", () => preview(node, r, false));
    }
    node.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      navigate({ ...state, task: r[C.dir] }, { detail: true });
    });
    return node;
  }

  // The video plays muted while the pointer is over its card, and is dropped after.
  function preview(node, r, on) {
    const box = node.querySelector(".thumb");
    let video = box.querySelector("video");
    if (!on) {
      if (video) {
        video.pause();
        video.remove();
      }
      return;
    }
    if (!video) {
      video = el("video", { src: inFolder(r, r[C.video]), muted: true, loop: true,
        playsinline: true, preload: "auto" });
      video.muted = true;
      box.append(video);
    }
    video.play().catch(() => {});
  }

  // -- the detail view --------------------------------------------------------------------

  function rowOf(dir) {
    if (!byDir) byDir = new Map(rows.map((r, i) => [r[C.dir], i]));
    return byDir.get(dir);
  }

  window.RUNWAY_GALLERY_SHARD = (key, entries) => shardData.set(key, entries);

  function loadMore() {
    const script = el("script", { src: `gallery/data-more.js?v=${encodeURIComponent(DATA.more || "")}` });
    script.addEventListener("load", () => {
      for (const row of window.RUNWAY_GALLERY_MORE || []) rows.push(row);
      window.RUNWAY_GALLERY_MORE = null;
      loading = false;
      haystack = null;
      byDir = null;
      filterKey = null;
      overview();
      apply();
      performance.mark("gallery-all-results");
      document.documentElement.dataset.loaded = "true";
    });
    script.addEventListener("error", () => {
      loading = false;
      $("count").textContent = "gallery/data-more.js could not be loaded: run `runway-archiver gallery`";
    });
    document.head.append(script);
  }

  function loadShard(key) {
    if (shardData.has(key)) return Promise.resolve(shardData.get(key));
    if (!/^[0-9a-f]{2}$/.test(key)) return Promise.reject(new Error("bad detail file name"));
    if (!shardLoads.has(key)) {
      shardLoads.set(key, new Promise((resolve, reject) => {
        const version = encodeURIComponent((DATA.shards || {})[key] || "");
        const script = el("script", { src: `gallery/detail/${key}.js?v=${version}` });
        script.addEventListener("load", () => resolve(shardData.get(key) || {}));
        script.addEventListener("error", () => {
          shardLoads.delete(key);
          reject(new Error(`gallery/detail/${key}.js could not be loaded`));
        });
        document.head.append(script);
      }));
    }
    return shardLoads.get(key);
  }

  function openDetail(dir) {
    const i = rowOf(dir);
    const dialog = $("detail");
    const body = $("d-body");
    const wasOpen = !dialog.hidden;
    dialog.hidden = false;
    document.body.classList.add("modal");
    if (dir === openDir && wasOpen) return;
    openDir = dir;
    const pos = i === undefined ? -1 : results.indexOf(i);
    $("d-pos").textContent = pos >= 0 ? `${pos + 1} of ${results.length}` : "";
    $("d-prev").disabled = pos <= 0;
    $("d-next").disabled = pos < 0 || pos >= results.length - 1;
    if (i === undefined) {
      openDir = "";  // looked up again once every row is loaded
      body.replaceChildren(el("p", { class: loading ? "loading" : "error" },
        loading ? "loading…" : "This task is not in the gallery."));
      return;
    }
    const r = rows[i];
    body.replaceChildren(...summary(r), el("p", { class: "loading" }, "loading details…"));
    if (!wasOpen) dialog.querySelector(".panel").focus();
    loadShard(r[C.shard]).then((entries) => {
      if (openDir !== dir) return;
      const entry = entries[dir];
      body.replaceChildren(...summary(r, entry), ...(entry ? details(r, entry) : [
        el("p", { class: "error" }, "No details were found for this task."),
      ]));
    }, (error) => {
      if (openDir === dir) body.lastChild.textContent = error.message;
    });
  }

  function summary(r, entry) {
    const media = el("div", { class: "media" });
    const artifacts = entry ? entry.files.filter((f) => f[0] === "artifact") : [];
    for (const f of artifacts) {
      const url = inFolder(r, f[2]);
      if (!url) continue;
      media.append(f[5] && f[5][3]
        ? el("video", { src: url, controls: true, preload: "metadata", playsinline: true })
        : el("img", { src: url, alt: "" }));
    }
    if (!artifacts.length) {
      const video = inFolder(r, r[C.video]);
      const thumb = inFolder(r, r[C.thumb]);
      if (video) media.append(el("video", { src: video, controls: true, preload: "metadata" }));
      else if (thumb) media.append(el("img", { src: thumb, alt: "" }));
    }
    const prompt = r[C.prompt];
    const copy = el("button", { type: "button", class: "copy" }, "Copy prompt");
    copy.addEventListener("click", () => copyText(prompt || "", copy));
    return [
      media,
      el("h2", { id: "d-name" }, r[C.name] || r[C.dir]),
      el("p", { class: "facts" }, facts(r)),
      r[C.error] ? el("p", { class: "error" }, `${r[C.status]}: ${r[C.error]}`) : null,
      el("div", { class: "prompt-box" },
        el("pre", { class: "prompt" }, prompt || "(no prompt)"), prompt ? copy : null),
    ].filter(Boolean);
  }

  function details(r, entry) {
    const task = entry.task || {};
    // Outputs by artifact, each with its previews, then the inputs (of the task as a whole).
    const kinds = ["artifact", "preview", "input"];
    const last = (f) => (f[0] === "input" ? 1 : 0);
    const files = (entry.files || []).slice().sort((a, b) => last(a) - last(b) || a[1] - b[1] ||
      kinds.indexOf(a[0]) - kinds.indexOf(b[0]) || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0));
    const out = [el("h3", {}, "Options"), pairs(task.options || [])];
    if (task.error && task.error.length) out.push(el("h3", {}, "Error"), pairs(task.error));
    const inputs = files.filter((f) => f[0] === "input");
    if (inputs.length) {
      const list = el("ul", { class: "inputs" });
      for (const f of inputs) {
        const url = inFolder(r, f[2]);
        const image = /\.(jpe?g|png|webp|gif)$/i.test(f[2]);
        list.append(el("li", {},
          url && image ? el("img", { src: url, alt: "", loading: "lazy" }) : null,
          url ? el("a", { href: url }, baseName(f[2])) : f[2]));
      }
      out.push(el("h3", {}, "Input assets"), list);
    }
    const table = el("table", { class: "files" },
      el("thead", {}, el("tr", {}, ...["file", "kind", "bytes", "sha256", "verification"]
        .map((h) => el("th", {}, h)))));
    const tbody = el("tbody");
    for (const f of files) {
      const url = inFolder(r, f[2]);
      tbody.append(el("tr", {},
        el("td", {}, url ? el("a", { href: url }, f[2]) : f[2]),
        el("td", {}, f[0]),
        el("td", { title: `${f[3]} bytes` }, bytes(f[3])),
        el("td", { class: "sha" }, f[4]),
        el("td", {}, check(f[5], f[6]))));
    }
    table.append(tbody);
    if (files.length) out.push(el("h3", {}, "Files"), table);
    out.push(el("p", { class: "ids" }, `task ${task.taskId || ""}`,
      el("br"), `folder ${r[C.dir]}`, task.updated ? el("br") : null,
      task.updated ? `updated ${when(task.updated)}` : null));
    return out;
  }

  function pairs(list) {
    const table = el("table", { class: "options" });
    for (const [key, value] of list) table.append(el("tr", {}, el("th", {}, key), el("td", {}, value)));
    return table;
  }

  // probe is [codec, width, height, duration, frame rate] as verified on disk.
  function check(probe, unchecked) {
    const [codec, width, height, duration, fps] = Array.isArray(probe) ? probe : [];
    const parts = [codec];
    if (width && height) parts.push(`${width}×${height}`);
    if (typeof duration === "number") parts.push(`${duration.toFixed(2)} s`);
    if (typeof fps === "number") parts.push(`${+fps.toFixed(3)} fps`);
    let text = `verified: ${parts.filter(Boolean).join(", ")}`;
    if (unchecked && unchecked.length) text += `; not claimed by the API: ${unchecked.join(", ")}`;
    return text;
  }

  function copyText(text, button) {
    const done = (ok) => {
      button.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => { button.textContent = "Copy prompt"; }, 1500);
    };
    const fallback = () => {
      const area = el("textarea", { class: "offscreen", readonly: true });
      area.value = text;
      document.body.append(area);
      area.select();
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      area.remove();
      done(ok);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => done(true), fallback);
    } else {
      fallback();
    }
  }

  function closeDetailView() {
    const dialog = $("detail");
    if (dialog.hidden) return;
    for (const video of dialog.querySelectorAll("video")) video.pause();
    dialog.hidden = true;
    document.body.classList.remove("modal");
    $("d-body").replaceChildren();
    const i = rowOf(openDir);
    openDir = "";
    const back = $("cards").querySelector(`[data-i="${i}"]`);
    if (back) back.focus({ preventScroll: true });
  }

  function close() {
    if (history.state && history.state.detail) history.back();
    else navigate({ ...state, task: "" }, { replace: true });
  }

  function step(delta) {
    const pos = results.indexOf(rowOf(state.task));
    const next = results[pos + delta];
    if (pos < 0 || next === undefined) return;
    navigate({ ...state, task: rows[next][C.dir] }, { replace: true });
  }

  // -- the header: totals and a chart of generations per month, in plain SVG ---------------

  function header() {
    const t = DATA.totals || {};
    const parts = [`${(t.tasks || 0).toLocaleString("en")} tasks`];
    if (t.failed) parts.push(`${t.failed.toLocaleString("en")} failed`);
    parts.push(`${(t.files || 0).toLocaleString("en")} files`, bytes(t.bytes || 0));
    parts.push(t.lastRun ? `last run ${when(t.lastRun)}` : "no run yet");
    $("totals").textContent = parts.join(" · ");
  }

  // The model list and the chart need every row: drawn once all are loaded.
  function overview() {
    const models = [...new Set(rows.map((r) => r[C.model]).filter(Boolean))].sort();
    $("model").replaceChildren(el("option", { value: "" }, "all models"),
      ...models.map((m) => el("option", { value: m }, m)));
    chart();
  }

  function chart() {
    const counts = new Map();
    for (const r of rows) {
      const month = (r[C.created] || "").slice(0, 7);
      if (/^\d{4}-\d{2}$/.test(month)) counts.set(month, (counts.get(month) || 0) + 1);
    }
    if (!counts.size) return;
    const known = [...counts.keys()].sort();
    const months = [];
    let [y, m] = known[0].split("-").map(Number);
    // At least a year, so that a new archive's one month is a bar, not the whole chart.
    const [lastY, lastM] = known[known.length - 1].split("-").map(Number);
    if ((lastY - y) * 12 + lastM - m < 11) {
      y = lastM === 12 ? lastY : lastY - 1;
      m = lastM === 12 ? 1 : lastM + 1;
    }
    const end = known[known.length - 1];
    for (;;) {
      const key = `${y}-${String(m).padStart(2, "0")}`;
      months.push(key);
      if (key >= end || months.length > 240) break;
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    const shown = months.slice(-60);
    const most = Math.max(...shown.map((k) => counts.get(k) || 0));
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${shown.length * 12} 50`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    shown.forEach((key, n) => {
      const count = counts.get(key) || 0;
      const height = count ? Math.max(2, (count / most) * 48) : 0;
      const bar = document.createElementNS(ns, "rect");
      bar.setAttribute("x", String(n * 12 + 1));
      bar.setAttribute("y", String(50 - height));
      bar.setAttribute("width", "10");
      bar.setAttribute("height", String(height));
      const title = document.createElementNS(ns, "title");
      title.textContent = `${key}: ${count} generation${count === 1 ? "" : "s"}`;
      bar.append(title);
      bar.addEventListener("click", () => {
        const [yy, mm] = key.split("-").map(Number);
        const last = new Date(Date.UTC(yy, mm, 0)).getUTCDate();
        navigate({ ...state, from: `${key}-01`, to: `${key}-${last}`, task: "" });
      });
      svg.append(bar);
    });
    const caption = $("chart").querySelector("figcaption");
    caption.textContent = `generations per month, ${shown[0]} to ${shown[shown.length - 1]}`;
    for (const old of $("chart").querySelectorAll("svg")) old.remove();
    $("chart").insertBefore(svg, caption);
  }

  // -- wiring -----------------------------------------------------------------------------

  function search() {
    clearTimeout(typing);
    typing = null;
    navigate({ ...state, q: $("q").value, task: "" });
  }
  $("q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(search, 250);
  });
  $("controls").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  for (const id of ["model", "from", "to", "inputs", "sort"]) {
    $(id).addEventListener("change", () => navigate({ ...state, [id]: $(id).value, task: "" }));
  }
  $("status").addEventListener("change", () => {
    const on = [...$("status").querySelectorAll("input:checked")].map((b) => b.value);
    navigate({ ...state, status: on, task: "" });
  });
  $("d-close").addEventListener("click", close);
  $("d-prev").addEventListener("click", () => step(-1));
  $("d-next").addEventListener("click", () => step(1));
  $("detail").addEventListener("click", (event) => {
    if (event.target === $("detail")) close();
  });
  document.addEventListener("keydown", (event) => {
    if ($("detail").hidden || event.altKey || event.ctrlKey || event.metaKey) return;
    const tag = event.target.tagName;
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if ((event.key === "ArrowLeft" || event.key === "ArrowRight") && tag !== "VIDEO" &&
        tag !== "INPUT" && tag !== "TEXTAREA") {
      event.preventDefault();
      step(event.key === "ArrowLeft" ? -1 : 1);
    }
  });
  window.addEventListener("popstate", apply);
  window.addEventListener("hashchange", apply);
  window.addEventListener("scroll", schedule, { passive: true });
  window.addEventListener("resize", () => {
    shownWindow = "";
    schedule();
  });

  header();
  if (!loading) overview();
  apply();
  performance.mark("gallery-first-results");
  document.documentElement.dataset.ready = "true";
  if (loading) {
    loadMore();
  } else {
    performance.mark("gallery-all-results");
    document.documentElement.dataset.loaded = "true";
  }
})();
