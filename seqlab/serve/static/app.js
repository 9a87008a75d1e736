/* The demo page of `seqlab serve`: one panel per loaded model, built from GET api/models.
 *
 * Plain JavaScript, no framework and nothing fetched from elsewhere (the page works offline).
 * Model output is only ever written with textContent, never parsed as HTML.
 *
 * DOM contract (tests/serve/test_browser.py relies on it):
 *   section.panel[data-task][data-model], data-state = "idle" | "busy" | "done" | "error"
 *   textarea[data-role=input] (speech: input[type=file][data-role=file], button[data-role=record])
 *   button[data-role=run]; results under [data-role=output]; errors in [data-role=error]
 *   NER mark.entity[data-type]; sentiment [data-role=label], [data-role=score-bar][data-label]
 *   translation [data-role=translation], input[data-role=attention], [data-role=heatmap]
 *   speech [data-role=transcript]; LM [data-role=generated], input[data-role=temperature|top_k|max_tokens]
 *   options of the model: [data-role=OPTION] (translation beam_size; speech decoder (a select), beam_size)
 */
"use strict";

(() => {
  const SAMPLE_RATE = 16000; // what recordings are resampled to before they are sent
  const MAX_RECORD_SECONDS = 30;
  const EXAMPLES = {
    sentiment: "The food was wonderful and the staff were friendly.",
    ner: "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    translation: "A man is riding a bicycle.",
    lm: "the food was",
  };
  const TASK_TITLES = {
    sentiment: "Sentiment", ner: "Named entities", translation: "Translation",
    speech: "Speech recognition", lm: "Language model",
  };
  const ENTITY_COLORS = { PER: 210, LOC: 130, ORG: 30, MISC: 280 }; // hues; other types get one of HUES
  const HUES = [0, 180, 55, 320, 95, 250, 15, 160];

  let uid = 0;
  const nextId = (prefix) => `${prefix}-${++uid}`;

  /** el("div", {class: "x", dataset: {role: "y"}}, child, "text") */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style" && typeof value === "object") {
        // setProperty: custom properties (--hue) cannot be set as style fields.
        for (const [name, v] of Object.entries(value)) node.style.setProperty(name, String(v));
      }
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmt = (x, digits = 2) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : String(x));
  const percent = (x) => `${(Math.max(0, Math.min(1, Number(x) || 0)) * 100).toFixed(1)}%`;

  // -- the API ----------------------------------------------------------------------------------
  class ApiError extends Error {}

  /** fetch → parsed JSON; an ApiError with the server's message on a 4xx/5xx or a network fault. */
  async function api(path, init) {
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(`Could not reach the server (${err.message}).`);
    }
    let body = null;
    const text = await response.text();
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const message = body && typeof body.error === "string" ? body.error
        : `HTTP ${response.status} ${response.statusText}`.trim();
      throw new ApiError(message);
    }
    if (body === null) throw new ApiError("The server's answer was not JSON.");
    return body;
  }

  const predictUrl = (model) => `api/models/${encodeURIComponent(model)}/predict`;

  function postJson(model, input, options) {
    return api(predictUrl(model), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ input, options }),
    });
  }

  function postFile(model, file, options) {
    const form = new FormData();
    form.append("file", file, file.name || "audio");
    if (options && Object.keys(options).length) form.append("options", JSON.stringify(options));
    return api(predictUrl(model), { method: "POST", body: form, headers: { Accept: "application/json" } });
  }

  // -- panels -----------------------------------------------------------------------------------
  /** The parts every panel has: a section with a heading, a form, an output area and an error box. */
  function panelShell(info) {
    const task = String(info.task || "unknown");
    const title = TASK_TITLES[task] || task;
    const headingId = nextId("heading");
    const output = el("div", { class: "output", dataset: { role: "output" }, "aria-live": "polite" });
    const error = el("div", { class: "error-box", dataset: { role: "error" }, role: "alert", hidden: true });
    const run = el("button", { type: "submit", class: "run", dataset: { role: "run" } }, task === "lm" ? "Generate" : "Run");
    const controls = el("div", { class: "controls" });
    const form = el("form", { class: "panel-form", "aria-labelledby": headingId, novalidate: true }, controls, el("div", { class: "actions" }, run));
    const section = el(
      "section",
      { class: "panel", dataset: { task, model: String(info.name), state: "idle" }, "aria-labelledby": headingId },
      el("header", { class: "panel-header" },
        el("h2", { id: headingId }, String(info.name)),
        el("span", { class: "badge" }, title)),
      describeModel(info),
      form, error, output,
    );
    const shell = { section, form, controls, run, output, error, info, busy: false };
    return shell;
  }

  /** A short line under the heading: the model's labels and its recorded metrics, if any. */
  function describeModel(info) {
    const parts = [];
    const metrics = info.metrics && typeof info.metrics === "object" ? Object.entries(info.metrics) : [];
    const shown = metrics.filter(([, v]) => typeof v === "number").slice(0, 3);
    if (shown.length) parts.push(`dev: ${shown.map(([k, v]) => `${k} ${Number.isInteger(v) ? v : fmt(v)}`).join(" · ")}`);
    if (!parts.length) return null;
    return el("p", { class: "model-info muted" }, parts.join(" — "));
  }

  /** Run `request()` with the section busy; `render(prediction)` on success, the error box on failure. */
  async function runPanel(shell, request, render) {
    if (shell.busy) return;
    shell.busy = true;
    const { section, run, error, output } = shell;
    section.dataset.state = "busy";
    section.setAttribute("aria-busy", "true");
    run.disabled = true;
    error.hidden = true;
    error.textContent = "";
    try {
      const body = await request();
      if (!body || !("prediction" in body)) throw new ApiError("The server's answer has no prediction.");
      output.replaceChildren();
      render(body.prediction);
      section.dataset.state = "done";
    } catch (err) {
      output.replaceChildren();
      error.textContent = err instanceof ApiError ? err.message : `Could not show the result: ${err.message}`;
      error.hidden = false;
      section.dataset.state = "error";
      if (!(err instanceof ApiError)) console.error(err);
    } finally {
      shell.busy = false;
      section.removeAttribute("aria-busy");
      run.disabled = false;
    }
  }

  function textInput(shell, labelText, example) {
    const id = nextId("input");
    const textarea = el("textarea", { id, rows: 3, dataset: { role: "input" }, spellcheck: "false" });
    textarea.value = example || "";
    // Ctrl/Cmd+Enter runs, as in most chat and playground pages.
    textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        shell.form.requestSubmit();
      }
    });
    shell.controls.append(el("label", { for: id }, labelText), textarea);
    return textarea;
  }

  const hasOption = (info, name) => Boolean(info.options && info.options[name]);

  // -- NER --------------------------------------------------------------------------------------
  function entityTypes(info) {
    const types = [];
    for (const label of Array.isArray(info.labels) ? info.labels : []) {
      const type = String(label).replace(/^[BIESLU]-/, "");
      if (type !== "O" && type && !types.includes(type)) types.push(type);
    }
    return types;
  }

  function entityHue(type, types) {
    if (type in ENTITY_COLORS) return ENTITY_COLORS[type];
    const index = types.indexOf(type);
    let h = 0;
    for (const c of type) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return HUES[(index >= 0 ? index : h) % HUES.length];
  }

  function legend(types) {
    if (!types.length) return null;
    return el("div", { class: "legend" }, el("span", { class: "muted small", id: nextId("legend") }, "Entity types:"),
      el("ul", { "aria-label": "Entity types" },
        types.map((type) => el("li", { class: "chip", style: { "--hue": entityHue(type, types) } }, type))));
  }

  function nerPanel(info) {
    const shell = panelShell(info);
    const types = entityTypes(info);
    const textarea = textInput(shell, "Text", EXAMPLES.ner);
    const legendNode = legend(types);
    if (legendNode) shell.controls.append(legendNode);
    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      runPanel(shell, () => postJson(info.name, textarea.value, {}), (p) => renderEntities(shell.output, p, types));
    });
    return shell.section;
  }

  function renderEntities(output, prediction, types) {
    const text = typeof prediction?.text === "string" ? prediction.text : "";
    const found = prediction?.spans || prediction?.entities || [];
    // Character offsets (char_start/char_end) when the task gives them; else find the text in order.
    let cursor = 0;
    const spans = [];
    for (const span of found) {
      let start = Number.isInteger(span.char_start) ? span.char_start : text.indexOf(span.text, cursor);
      let end = Number.isInteger(span.char_end) ? span.char_end : start + String(span.text).length;
      if (start < 0) continue;
      spans.push({ ...span, start, end });
      cursor = end;
    }
    spans.sort((a, b) => a.start - b.start);
    const paragraph = el("p", { class: "entities", dataset: { role: "entities" } });
    let position = 0;
    for (const span of spans) {
      if (span.start < position) continue; // overlapping spans: keep the first
      paragraph.append(text.slice(position, span.start));
      const score = typeof span.score === "number" ? fmt(span.score) : "";
      paragraph.append(el("mark", {
        class: "entity",
        dataset: { type: span.type, score },
        title: `${span.type} ${score}`.trim(),
        style: { "--hue": entityHue(span.type, types) },
      }, text.slice(span.start, span.end)));
      position = span.end;
    }
    paragraph.append(text.slice(position));
    output.append(paragraph);
    const seen = [...new Set(spans.map((s) => s.type))];
    output.append(el("p", { class: "muted small" },
      spans.length ? `${spans.length} entit${spans.length === 1 ? "y" : "ies"}: ${seen.join(", ")}` : "No entities found."));
  }

  // -- sentiment --------------------------------------------------------------------------------
  function sentimentPanel(info) {
    const shell = panelShell(info);
    const textarea = textInput(shell, "Text", EXAMPLES.sentiment);
    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      runPanel(shell, () => postJson(info.name, textarea.value, {}), (p) => renderSentiment(shell.output, p, info));
    });
    return shell.section;
  }

  function renderSentiment(output, prediction, info) {
    const label = typeof prediction === "object" && prediction !== null ? prediction.label : prediction;
    output.append(el("p", { class: "verdict" }, "Label: ",
      el("strong", { dataset: { role: "label" } }, String(label)),
      typeof prediction?.score === "number" ? el("span", { class: "muted" }, ` (${fmt(prediction.score)})`) : null));
    const scores = prediction && typeof prediction.scores === "object" ? prediction.scores : {};
    const order = Array.isArray(info.labels) ? info.labels.map(String).filter((l) => l in scores) : [];
    for (const key of Object.keys(scores)) if (!order.includes(key)) order.push(key);
    if (!order.length) return;
    const list = el("dl", { class: "scores" });
    for (const name of order) {
      const score = Number(scores[name]);
      list.append(
        el("dt", {}, name),
        el("dd", {},
          el("span", { class: "bar-track", "aria-hidden": "true" },
            el("span", {
              class: `bar${String(name) === String(label) ? " best" : ""}`,
              dataset: { role: "score-bar", label: name, score: String(score) },
              style: { width: percent(score) },
            })),
          el("span", { class: "bar-value" }, percent(score))));
    }
    output.append(list);
  }

  // -- translation ------------------------------------------------------------------------------
  function translationPanel(info) {
    const shell = panelShell(info);
    const textarea = textInput(shell, "Source text", EXAMPLES.translation);
    let attention = null;
    if (hasOption(info, "return_attention")) {
      const id = nextId("attention");
      attention = el("input", { type: "checkbox", id, dataset: { role: "attention" } });
      shell.controls.append(el("div", { class: "check" }, attention, el("label", { for: id }, "show attention")));
    }
    const box = el("div", { class: "options" });
    const beam = optionField(box, info, "beam_size", "Beam size");
    if (beam) shell.controls.append(box);
    let last = null; // the input of the last run: ticking the box reruns it with or without attention
    const go = (text) => {
      last = text;
      const options = readOptions(info, { beam_size: beam });
      if (attention && attention.checked) options.return_attention = true;
      runPanel(shell, () => postJson(info.name, text, options), (p) => renderTranslation(shell.output, p));
    };
    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      go(textarea.value);
    });
    if (attention) attention.addEventListener("change", () => { if (last !== null) go(last); });
    return shell.section;
  }

  function renderTranslation(output, prediction) {
    const text = typeof prediction === "string" ? prediction : prediction?.text;
    output.append(el("p", { class: "translation", dataset: { role: "translation" }, lang: "" }, String(text ?? "")));
    if (prediction && Array.isArray(prediction.attention)) output.append(heatmap(prediction));
  }

  /** The attention matrix as a table: a row per target piece, a column per source piece. */
  function heatmap(prediction) {
    const matrix = prediction.attention;
    const source = prediction.source_pieces || [];
    const target = prediction.target_pieces || [];
    const cols = Math.max(source.length, ...matrix.map((r) => r.length));
    const noteId = nextId("heatmap-note");
    const table = el("table", { class: "heatmap", dataset: { role: "heatmap" }, "aria-describedby": noteId },
      el("thead", {}, el("tr", {}, el("td", { class: "corner" }),
        Array.from({ length: cols }, (_, j) => el("th", { scope: "col" }, el("span", {}, source[j] ?? ""))))));
    const body = el("tbody");
    matrix.forEach((row, i) => {
      const tr = el("tr", {}, el("th", { scope: "row" }, target[i] ?? ""));
      for (let j = 0; j < cols; j++) {
        const w = Number(row[j]) || 0;
        const level = Math.max(0, Math.min(1, w)); // each row sums to 1: the same 0–1 scale as save_attention_png
        tr.append(el("td", {
          title: `${target[i] ?? ""} ← ${source[j] ?? ""}: ${w.toFixed(3)}`,
          style: { "--level": level.toFixed(3) },
          class: level > 0.55 ? "strong" : null,
        }, w.toFixed(2)));
      }
      body.append(tr);
    });
    table.append(body);
    return el("div", { class: "heatmap-box" },
      el("p", { class: "muted small", id: noteId },
        "Attention: a row per output piece, a column per source piece; the shade is the weight, from 0 (blank) to 1."),
      el("div", { class: "heatmap-scroll", tabindex: "0", role: "region", "aria-label": "Attention heatmap" }, table));
  }

  // -- speech -----------------------------------------------------------------------------------
  function recordingSupport() {
    if (!window.isSecureContext) return "Recording needs a secure page (https:// or http://localhost).";
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) return "This browser gives no microphone access.";
    if (!window.MediaRecorder) return "This browser cannot record (no MediaRecorder).";
    if (!(window.AudioContext || window.webkitAudioContext) || !window.OfflineAudioContext) {
      return "This browser cannot convert a recording (no Web Audio).";
    }
    return null;
  }

  /** A recording (any format the browser itself recorded) → mono float samples at SAMPLE_RATE. */
  async function toSamples(blob) {
    const Context = window.AudioContext || window.webkitAudioContext;
    const context = new Context();
    let decoded;
    try {
      decoded = await context.decodeAudioData(await blob.arrayBuffer());
    } finally {
      context.close();
    }
    const length = Math.max(1, Math.ceil(decoded.duration * SAMPLE_RATE));
    // An offline context at 16 kHz with one channel resamples and downmixes in one render.
    const offline = new OfflineAudioContext(1, length, SAMPLE_RATE);
    const source = offline.createBufferSource();
    source.buffer = decoded;
    source.connect(offline.destination);
    source.start();
    const rendered = await offline.startRendering();
    // Resampling may overshoot full scale a little; seqlab expects samples in [-1, 1].
    return Array.from(rendered.getChannelData(0), (x) => Math.round(Math.max(-1, Math.min(1, x)) * 1e5) / 1e5);
  }

  function speechPanel(info) {
    const shell = panelShell(info);
    const fileId = nextId("file");
    const file = el("input", {
      type: "file", id: fileId, dataset: { role: "file" },
      accept: ".wav,.flac,.ogg,audio/wav,audio/x-wav,audio/flac,audio/ogg",
    });
    const record = el("button", { type: "button", class: "record", dataset: { role: "record" }, "aria-pressed": "false" }, "● Record");
    const note = el("p", { class: "muted small", dataset: { role: "record-note" } });
    const player = el("audio", { controls: true, hidden: true, class: "player" });
    const box = el("div", { class: "options" });
    const decoding = {
      decoder: optionField(box, info, "decoder", "Decoder"),
      beam_size: optionField(box, info, "beam_size", "Beam size"),
    };
    shell.controls.append(
      el("label", { for: fileId }, "Audio file (WAV, FLAC or Ogg)"), file,
      el("div", { class: "record-row" }, record, note), player,
      box.childElementCount ? box : null,
    );
    let clip = null; // {kind: "file", file} or {kind: "samples", samples}
    const setPlayer = (blob) => {
      if (player.src) URL.revokeObjectURL(player.src);
      player.src = URL.createObjectURL(blob);
      player.hidden = false;
    };
    file.addEventListener("change", () => {
      if (file.files && file.files[0]) {
        clip = { kind: "file", file: file.files[0] };
        setPlayer(file.files[0]);
        note.textContent = `File: ${file.files[0].name}`;
      }
    });

    const unsupported = recordingSupport();
    if (unsupported) {
      record.disabled = true;
      note.textContent = `${unsupported} Upload a file instead.`;
    } else {
      let recorder = null;
      let timer = null;
      const stop = () => { if (recorder && recorder.state === "recording") recorder.stop(); };
      record.addEventListener("click", async () => {
        if (recorder && recorder.state === "recording") return stop();
        let stream;
        try {
          stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
        } catch (err) {
          note.textContent = `No microphone: ${err.message || err.name}.`;
          return;
        }
        const chunks = [];
        recorder = new MediaRecorder(stream);
        recorder.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
        recorder.addEventListener("stop", async () => {
          clearTimeout(timer);
          stream.getTracks().forEach((t) => t.stop());
          record.textContent = "● Record";
          record.setAttribute("aria-pressed", "false");
          record.classList.remove("recording");
          const blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
          try {
            const samples = await toSamples(blob);
            clip = { kind: "samples", samples };
            file.value = ""; // the recording replaces a chosen file
            setPlayer(blob);
            note.textContent = `Recorded ${(samples.length / SAMPLE_RATE).toFixed(1)} s; transcribing…`;
            shell.form.requestSubmit();
          } catch (err) {
            note.textContent = `Could not read the recording: ${err.message}.`;
          }
        });
        recorder.start();
        record.textContent = "■ Stop";
        record.setAttribute("aria-pressed", "true");
        record.classList.add("recording");
        note.textContent = `Recording… (at most ${MAX_RECORD_SECONDS} s)`;
        timer = setTimeout(stop, MAX_RECORD_SECONDS * 1000);
      });
    }

    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const render = (p) => {
        const text = typeof p === "string" ? p : p?.text;
        shell.output.append(el("p", { class: "transcript", dataset: { role: "transcript" } }, String(text ?? "")));
        if (!text) shell.output.append(el("p", { class: "muted small" }, "(empty transcript)"));
      };
      let request;
      const options = readOptions(info, decoding);
      if (clip && clip.kind === "samples") {
        const samples = clip.samples;
        request = () => postJson(info.name, { samples, sample_rate: SAMPLE_RATE }, options);
      } else if (clip && clip.kind === "file") {
        const chosen = clip.file;
        request = () => postFile(info.name, chosen, options);
      } else {
        request = () => Promise.reject(new ApiError("Choose an audio file or record a clip first."));
      }
      runPanel(shell, request, render);
    });
    return shell.section;
  }

  // -- per-call options (from the model's "options" in api/models) ------------------------------------
  const isInteger = (option) => /^int/.test(String(option.type));

  /** A labelled control for one option of the model: a select of its choices or a number input
   * starting at its default (empty: the default). null where the model has no such option. */
  function optionField(container, info, name, labelText) {
    const option = info.options && info.options[name];
    if (!option) return null;
    const id = nextId(name);
    const hasDefault = option.default !== null && option.default !== undefined;
    let input;
    if (Array.isArray(option.choices) && option.choices.length) {
      input = el("select", { id, name, dataset: { role: name } },
        option.choices.map((choice) => el("option", { value: String(choice) }, String(choice))));
      if (hasDefault) input.value = String(option.default);
    } else {
      const integer = isInteger(option);
      input = el("input", {
        type: "number", id, name, dataset: { role: name }, step: integer ? 1 : 0.1,
        min: option.low ?? (name === "temperature" ? 0 : null), max: option.high ?? null,
        placeholder: hasDefault ? null : "none", inputmode: integer ? "numeric" : "decimal",
      });
      if (hasDefault) input.value = String(option.default);
    }
    const hint = option.doc ? el("small", { class: "muted", id: `${id}-hint` }, option.doc) : null;
    if (hint) input.setAttribute("aria-describedby", hint.id);
    container.append(el("div", { class: "field" }, el("label", { for: id }, labelText), input, hint));
    return input;
  }

  /** The request's options from the controls; the server checks the values (its message shows in the error box). */
  function readOptions(info, inputs) {
    const options = {};
    for (const [name, input] of Object.entries(inputs)) {
      if (!input) continue;
      const option = info.options[name];
      if (input.tagName === "SELECT") {
        options[name] = option.choices[input.selectedIndex];
        continue;
      }
      const raw = input.value.trim();
      if (raw === "") continue; // empty: the model's default
      options[name] = isInteger(option) && /^-?\d+$/.test(raw) ? Number.parseInt(raw, 10) : Number(raw);
    }
    return options;
  }

  // -- language model ---------------------------------------------------------------------------
  function lmPanel(info) {
    const shell = panelShell(info);
    const textarea = textInput(shell, "Prompt", EXAMPLES.lm);
    const box = el("div", { class: "options" });
    shell.controls.append(box);
    const inputs = {
      temperature: optionField(box, info, "temperature", "Temperature"),
      top_k: optionField(box, info, "top_k", "Top-k"),
      max_tokens: optionField(box, info, "max_tokens", "Max tokens"),
    };
    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const options = readOptions(info, inputs);
      runPanel(shell, () => postJson(info.name, textarea.value, options), (p) => {
        const full = typeof p === "string" ? p : String(p?.text ?? "");
        const continuation = typeof p?.continuation === "string" ? p.continuation : "";
        const out = el("p", { class: "generated", dataset: { role: "generated" } });
        if (continuation && full.endsWith(continuation)) {
          out.append(el("span", { class: "prompt" }, full.slice(0, full.length - continuation.length)),
            el("strong", { class: "continuation" }, continuation));
        } else {
          out.append(full);
        }
        shell.output.append(out);
        if (p?.stopped_by) shell.output.append(el("p", { class: "muted small" }, `stopped by ${p.stopped_by}`));
      });
    });
    return shell.section;
  }

  // -- any other task: its raw JSON ----------------------------------------------------------------
  function genericPanel(info) {
    const shell = panelShell(info);
    let read;
    if (info.input === "audio") {
      const id = nextId("file");
      const file = el("input", { type: "file", id, dataset: { role: "file" }, accept: "audio/*,.wav,.flac,.ogg" });
      shell.controls.append(el("label", { for: id }, "Audio file"), file);
      read = () => (file.files && file.files[0] ? postFile(info.name, file.files[0], {})
        : Promise.reject(new ApiError("Choose an audio file first.")));
    } else {
      const textarea = textInput(shell, "Input", "");
      read = () => postJson(info.name, textarea.value, {});
    }
    shell.form.addEventListener("submit", (event) => {
      event.preventDefault();
      runPanel(shell, read, (p) => shell.output.append(
        el("pre", { class: "json", dataset: { role: "json" } }, JSON.stringify(p, null, 2))));
    });
    return shell.section;
  }

  const PANELS = { ner: nerPanel, sentiment: sentimentPanel, translation: translationPanel, speech: speechPanel, lm: lmPanel };

  // -- start --------------------------------------------------------------------------------------
  async function main() {
    const status = document.getElementById("status");
    const panels = document.getElementById("panels");
    let models;
    try {
      models = (await api("api/models")).models;
      if (!Array.isArray(models)) throw new ApiError("The model list has no 'models' array.");
    } catch (err) {
      status.textContent = `Could not load the models: ${err.message}`;
      status.classList.add("error-box");
      document.body.dataset.state = "error";
      return;
    }
    for (const info of models) {
      const make = PANELS[info.task] || genericPanel;
      try {
        panels.append(make(info));
      } catch (err) {
        console.error(err);
        panels.append(el("section", { class: "panel", dataset: { task: String(info.task), model: String(info.name), state: "error" } },
          el("h2", {}, String(info.name)), el("p", { class: "error-box", dataset: { role: "error" } }, `Could not build this panel: ${err.message}`)));
      }
    }
    status.textContent = models.length
      ? `${models.length} model${models.length === 1 ? "" : "s"} loaded.`
      : "No models are loaded. Start the server with one: seqlab serve runs/sentiment";
    const version = models.find((m) => m.seqlab_version)?.seqlab_version;
    if (version) document.getElementById("version").textContent = `seqlab ${version}`;
    document.body.dataset.state = "ready";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
