// redraw console: uploads, tasks live (server-sent events), before/after, the function's lines.
// Plain script, no dependencies, no build step.
"use strict";

(function () {
  const byId = (id) => document.getElementById(id);
  const rows = new Map();          // row id -> {el, task, linesShown}
  let config = null;

  // --- small helpers ---------------------------------------------------------------------------

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return isNaN(date) ? String(iso) : date.toLocaleTimeString();
  }

  function fileUrl(key, version) {
    return "/files/" + key.split("/").map(encodeURIComponent).join("/") + "?v=" + encodeURIComponent(version || "");
  }

  function sizeText(bytes) {
    if (bytes >= 1024 ** 3) return (bytes / 1024 ** 3).toFixed(2) + " GB";
    if (bytes >= 1024 ** 2) return (bytes / 1024 ** 2).toFixed(1) + " MB";
    return bytes + " bytes";
  }

  function say(text, kind) {
    const status = byId("upload-status");
    status.textContent = text;
    status.className = "upload-status" + (kind ? " " + kind : "");
  }

  // --- uploads ---------------------------------------------------------------------------------

  function metaHeaders() {
    const headers = {};
    const box = byId("meta");
    if (!config || !config.metadata || !box.value.trim()) return headers;
    for (const raw of box.value.split("\n")) {
      const line = raw.trim();
      if (!line) continue;
      const at = line.indexOf(":");
      const name = at > 0 ? line.slice(0, at).trim().toLowerCase() : "";
      const value = at > 0 ? line.slice(at + 1).trim() : "";
      if (!/^[a-z0-9-]+$/.test(name)) throw new Error("metadata: \"" + line + "\" is not name: value (letters, digits, -)");
      if (!/^[\x20-\x7e]*$/.test(value)) throw new Error("metadata: the value of " + name + " must be plain ASCII");
      headers["x-cos-meta-" + name.replace(/^x-cos-meta-/, "")] = value;
    }
    return headers;
  }

  async function upload(file) {
    if (!file) return;
    if (!config) { say("The console is still connecting; try again in a moment.", "bad"); return; }
    if (!config.uploads) { say(config.why_no_uploads, "bad"); return; }
    if (file.size > config.max_bytes) {
      say(file.name + " is " + sizeText(file.size) + ": VOD takes inputs under 2 GB. Nothing was uploaded.", "bad");
      return;
    }
    const lower = file.name.toLowerCase();
    if (!config.video_suffixes.some((suffix) => lower.endsWith(suffix))) {
      say(file.name + " is not a video: its name does not end with one of " + config.video_suffixes.join(", ") +
          ". Nothing was uploaded.", "bad");
      return;
    }
    let headers;
    try {
      headers = Object.assign({"X-Redraw-Console": "1", "Content-Type": file.type || "application/octet-stream"},
                              metaHeaders());
    } catch (error) {
      say(error.message + ". Nothing was uploaded.", "bad");
      return;
    }
    say("Uploading " + file.name + " (" + sizeText(file.size) + ")…", "busy");
    byId("upload").setAttribute("aria-busy", "true");
    try {
      const answer = await send("/api/upload?name=" + encodeURIComponent(file.name), headers, file);
      const body = answer.body;
      if (!answer.ok) {
        const message = body.error && body.error.message ? body.error.message : "the server answered " + answer.status;
        say("Not uploaded: " + message + ".", "bad");
        return;
      }
      say("Uploaded as " + body.key + " (" + sizeText(body.size) + "): " + (body.fired
          ? "the COS trigger fired, as for an upload to the bucket."
          : "waiting for the COS trigger (the function's instances are busy)."), "good");
    } catch (error) {
      say("Not uploaded: the console could not be reached (" + error.message + ").", "bad");
    } finally {
      byId("upload").removeAttribute("aria-busy");
      byId("file").value = "";
    }
  }

  // XMLHttpRequest rather than fetch: it reports the upload's progress (said in 10 % steps)
  function send(url, headers, file) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      let said = -1;
      request.open("POST", url);
      for (const [name, value] of Object.entries(headers)) request.setRequestHeader(name, value);
      request.upload.onprogress = (event) => {
        if (!event.lengthComputable) return;
        const step = Math.floor(event.loaded * 10 / event.total) * 10;
        if (step === said) return;
        said = step;
        say(step < 100 ? "Uploading " + file.name + ": " + step + " % of " + sizeText(file.size) + "…"
                       : "Uploaded " + file.name + "; waiting for the COS trigger…", "busy");
      };
      request.onload = () => {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch (error) { body = {}; }
        resolve({ok: request.status >= 200 && request.status < 300, status: request.status, body: body});
      };
      request.onerror = () => reject(new Error("the connection failed"));
      request.send(file);
    });
  }

  function setUpUploads() {
    byId("file").addEventListener("change", (event) => upload(event.target.files[0]));
    const zone = byId("dropzone");
    document.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    document.addEventListener("dragleave", (event) => {
      if (!event.relatedTarget) zone.classList.remove("over");
    });
    document.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (files && files.length) upload(files[0]);
    });
  }

  // --- rows ------------------------------------------------------------------------------------

  const STATE_TEXT = {
    uploaded: "uploaded",
    pending: "pending",
    succeeded: "succeeded",
    failed: "failed",
    lost: "lost",
    "no task": "no task",
  };

  function newRow(task) {
    const el = byId("task-template").content.firstElementChild.cloneNode(true);
    const entry = {el: el, task: null, linesShown: -1, media: null};
    el.querySelector("details.lines").addEventListener("toggle", () => showLines(entry));
    for (const [name, label] of [["before", "original"], ["after", "redrawn video"]]) {
      const video = el.querySelector("video." + name);
      video.setAttribute("aria-label", label + " of " + (task.key || task.task_id || "the task"));
      video.addEventListener("error", () => unplayable(entry, label, video));
    }
    return entry;
  }

  function unplayable(entry, label, video) {
    if (!video.getAttribute("src")) return;
    const codes = {1: "aborted", 2: "network error", 3: "cannot be decoded", 4: "not a playable video or missing"};
    const why = video.error ? codes[video.error.code] || "error " + video.error.code : "cannot be loaded";
    entry.el.dataset[label === "original" ? "beforeError" : "afterError"] = why;
    const problem = entry.el.querySelector(".problem");
    problem.hidden = false;
    problem.textContent = "The " + label + " cannot be played here: " + why + ".";
    problem.classList.add("warn");
  }

  async function showLines(entry) {
    const details = entry.el.querySelector("details.lines");
    if (!details.open || !entry.task || entry.linesShown === entry.task.lines) return;
    entry.linesShown = entry.task.lines;
    try {
      const answer = await fetch("/api/tasks/" + encodeURIComponent(entry.task.id) + "/lines");
      if (!answer.ok) return;
      const body = await answer.json();
      entry.el.querySelector(".line-text").textContent = body.lines.map((line) => JSON.stringify(line)).join("\n");
    } catch (error) {
      entry.linesShown = -1;
    }
  }

  function update(entry, task) {
    const el = entry.el;
    entry.task = task;
    el.dataset.id = task.id;
    el.dataset.key = task.key || "";
    el.dataset.state = task.state;
    el.querySelector(".key").textContent = task.key || "a task from a request (no upload)";
    const state = el.querySelector(".state");
    state.textContent = STATE_TEXT[task.state] || task.state;
    state.className = "state state-" + task.state.replace(" ", "-");
    el.querySelector(".task-id").textContent = task.task_id || "—";
    el.querySelector(".created").textContent = when(task.created_at);
    const finished = el.querySelector(".finished-item");
    finished.hidden = !task.finished_at;
    if (task.finished_at) {
      el.querySelector(".finished").textContent = when(task.finished_at) +
        (task.duration_s != null ? " (" + task.duration_s + " s of redrawing)" : "");
    }

    const progressLine = el.querySelector(".progress-line");
    const progress = el.querySelector("progress");
    const waiting = task.state === "pending" || task.state === "uploaded";
    progressLine.hidden = !waiting;
    if (waiting) {
      if (task.state === "uploaded") {
        progress.removeAttribute("value");
        el.querySelector(".progress-text").textContent = "waiting for the COS trigger";
      } else if (typeof task.progress === "number") {
        progress.value = task.progress;
        el.querySelector(".progress-text").textContent = "VOD Progress " + task.progress + " %";
      } else {
        progress.removeAttribute("value");
        el.querySelector(".progress-text").textContent = "pending (VOD's Progress is not known here)";
      }
    }

    const problem = el.querySelector(".problem");
    let text = "";
    if (task.state === "failed" || task.state === "lost") {
      text = (task.state === "lost" ? "Lost: " : "Failed: ") + (task.error_code || "no error code") +
             (task.message ? ": " + task.message : "");
    } else if (task.state === "no task") {
      text = "No task was created: " + (task.reason || "the function said no") +
             (task.error_code ? " (" + task.error_code + ")" : "");
    } else if (task.state === "succeeded" && !task.output) {
      text = "Succeeded, but the redrawn video was not delivered into this folder" +
             (task.delivered_to ? " (" + task.delivered_to + ")" : " (REDRAW_DELIVER_PREFIX is empty)") + ".";
    }
    if (text) {
      problem.hidden = false;
      problem.textContent = text;
      problem.classList.toggle("warn", task.state === "succeeded");
    } else if (!el.dataset.beforeError && !el.dataset.afterError) {
      problem.hidden = true;
    }

    if (task.state === "succeeded" && task.output && entry.media !== task.task_id) {
      entry.media = task.task_id;
      el.querySelector(".media").hidden = false;
      const before = el.querySelector("video.before");
      if (task.key) {          // an upload; a task made from a URL has no original in the folder
        before.src = fileUrl(task.key, task.task_id);
      } else {
        before.closest("figure").hidden = true;
      }
      el.querySelector("video.after").src = fileUrl(task.output, task.task_id);
    }

    const deliveries = el.querySelector(".deliveries");
    deliveries.hidden = !config || !config.inbox || !task.task_id;
    if (!deliveries.hidden) {
      const list = el.querySelector(".delivery-list");
      const items = task.deliveries || [];
      list.replaceChildren(...(items.length ? items : [null]).map((item) => {
        const li = document.createElement("li");
        li.textContent = item ? (item.type || "webhook") + " at " + when(item.received_at) + ": " +
          (item.verified ? "signature verified" : "signature NOT verified") +
          (item.answered && String(item.answered) !== "200" ? " (answered " + item.answered + ")" : "")
          : "none received yet";
        if (item) li.className = item.verified ? "verified" : "unverified";
        return li;
      }));
    }
    el.querySelector(".from-receipt").hidden = !(task.from_receipt && !task.lines);
    el.querySelector(".line-count").textContent = task.lines;
    showLines(entry);
  }

  function render(state) {
    config = state.config;
    byId("prefix").textContent = config.prefix;
    byId("metadata").hidden = !config.metadata;
    byId("inbox-note").textContent = config.inbox ? "" : "No webhook inbox: deliveries are not shown.";
    if (!config.uploads) byId("dropzone").classList.add("off");
    const list = byId("tasks");
    const seen = new Set();
    let previous = null;
    for (const task of state.tasks) {
      let entry = rows.get(task.id);
      if (!entry && task.was && rows.has(task.was)) {   // an upload's row became its task's
        entry = rows.get(task.was);
        rows.delete(task.was);
      }
      if (!entry) entry = newRow(task);
      rows.set(task.id, entry);
      seen.add(task.id);
      update(entry, task);
      const wanted = previous ? previous.nextSibling : list.firstChild;
      if (wanted !== entry.el) list.insertBefore(entry.el, wanted);
      previous = entry.el;
    }
    for (const [id, entry] of rows) {
      if (!seen.has(id)) {
        entry.el.remove();
        rows.delete(id);
      }
    }
    byId("empty").hidden = state.tasks.length > 0;
  }

  // --- live updates ----------------------------------------------------------------------------

  function connect() {
    const connection = byId("connection");
    const source = new EventSource("/api/events");
    source.onopen = () => { connection.textContent = "live"; connection.className = "connection live"; };
    source.onerror = () => { connection.textContent = "reconnecting…"; connection.className = "connection down"; };
    source.onmessage = (event) => {
      render(JSON.parse(event.data));
      if (!document.documentElement.dataset.ready) {
        document.documentElement.dataset.ready = String(Math.round(performance.now()));
      }
    };
  }

  setUpUploads();
  connect();
})();
