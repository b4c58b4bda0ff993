// The voicekit chat page. The reply text comes from POST /v1/chat, is shown as markdown and goes
// to the WebSocket /v1/speak as it arrives; the speech comes back as PCM played by an AudioWorklet,
// and the word being heard lights up inside the rendered reply. Barge-in (Stop, Esc, typing or
// sending) stops local playback at once and reports the played position; the history keeps only
// what was heard, as `voicekit chat` does, and the unheard rest is greyed out.

const RATE = 24000;
const INTERRUPTED = " [interrupted]";
// a spoken word is looked for at most this many rendered words ahead: list numbers are spoken but
// are not text on the page, and the speech filter rewrites a few words, so some have no rendered twin
const LOOKAHEAD = 8;
const RETRY_DELAYS = [500, 1000, 2000, 4000, 8000]; // ms between reconnects; the last one repeats
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}\p{N}]+)*/gu;

const $ = (id) => document.getElementById(id);
const log = $("log");
const input = $("input");
const statusLine = $("status");
const sendButton = $("send");
const stopButton = $("stop");
const muteButton = $("mute");
const voiceSelect = $("voice");
const rateSelect = $("rate");
const welcome = $("welcome");
const tokenPanel = $("token-panel");
const suggestions = document.querySelectorAll(".suggestion");

// for tests and the curious: what the worklet rendered and what the page showed
const stats = (window.voicekitStats = { rendered: 0, played: 0, heard: 0, replies: 0, ends: [], errors: [] });

const conversation = [];
let chat = 0; // bumped by "New chat": end events of older replies no longer touch the conversation
let token = tokenFromHash();
let socket = null;
let connection = "connecting"; // connecting | open | retrying | token | noaudio
let retries = 0;
let retryTimer = null;
let session = { voice: "", rate: 1 }; // what the server's session speaks with
let defaultVoice = "default";
let voicesLoaded = false;
let muted = localStorage.getItem("voicekit.muted") === "1";
let player = null;
let reply = null; // the newest reply on screen
const awaiting = []; // replies the server is speaking, oldest first: frames and words belong to the first

// #token=T in the address (URL-encoded; "+" stays "+"): the fragment never reaches the server
function tokenFromHash() {
  const match = location.hash.match(/[#&]token=([^&]*)/);
  return match ? decodeURIComponent(match[1]) : null;
}

function auth() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function b64url(text) {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// -- the log ---------------------------------------------------------------------------------
function nearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 60;
}

// new content scrolls into view unless the reader scrolled up to read something older
function append(el) {
  const follow = nearBottom();
  log.append(el);
  if (follow) log.scrollTop = log.scrollHeight;
  return el;
}

function bubble(kind, text = "") {
  const el = document.createElement("div");
  el.className = `msg ${kind}`;
  el.textContent = text;
  return append(el);
}

function note(text) {
  return bubble("note", text);
}

// -- markdown ----------------------------------------------------------------------------------
const markdown = window.markdownit({ linkify: true });
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  // a relative link (a reply's "README.md") would open a page of this server, which has none: text
  if (!/^(https?:|mailto:)/i.test(node.getAttribute("href") ?? "")) {
    node.removeAttribute("href");
    return;
  }
  // a link followed in this tab would end the conversation mid-reply
  node.setAttribute("target", "_blank");
  node.setAttribute("rel", "noopener noreferrer");
});

function renderMarkdown(text) {
  // markdown-it already escapes raw HTML; DOMPurify is the second lock. Style attributes (table
  // alignment) would only be refused by the page's Content-Security-Policy.
  return DOMPurify.sanitize(markdown.render(text), { FORBID_ATTR: ["style"] });
}

const wordKey = (word) => word.toLowerCase().replace(/[^\p{L}\p{N}]/gu, "");

// each word of the rendered reply in a span; code blocks are shown but not spoken, so left alone
function wrapWords(root) {
  const spans = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest("pre") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of node.data.matchAll(WORD)) {
      if (match.index > last) parts.append(node.data.slice(last, match.index));
      const span = document.createElement("span");
      span.className = "w";
      span.textContent = match[0];
      parts.append(span);
      spans.push(span);
      last = match.index + match[0].length;
    }
    if (!last) continue;
    if (last < node.data.length) parts.append(node.data.slice(last));
    node.replaceWith(parts);
  }
  return spans;
}

// places spoken words, in order, on the rendered word spans
class Aligner {
  constructor(spans) {
    this.keys = spans.map((span) => wordKey(span.textContent));
    this.next = 0;
  }

  // [first, last]: the spans `word` was spoken from, or null when it has no rendered twin nearby
  place(word) {
    const want = wordKey(word);
    if (!want) return null;
    const stop = Math.min(this.keys.length, this.next + LOOKAHEAD);
    for (let i = this.next; i < stop; i++) {
      // one spoken word can cover several rendered ones (Piper's "well-known", "1,000")
      let joined = "";
      for (let j = i; j < this.keys.length && joined.length < want.length; j++) {
        joined += this.keys[j];
        if (joined === want) return this.take(i, j);
      }
      // eSpeak names some words by their first part ("don" for "don't", "e" for "eSpeak")
      if (i === this.next && this.keys[i].startsWith(want)) return this.take(i, i);
    }
    return null;
  }

  take(first, last) {
    this.next = last + 1;
    return [first, last];
  }
}

// elements whose own whitespace only separates blocks: a span there would be a stray line
const BLOCK_LISTS = new Set(["OL", "UL", "TABLE", "THEAD", "TBODY", "TR", "BLOCKQUOTE"]);

// greys out the text after `after` (all of it when null): the part of the reply nobody heard
function fadeAfter(root, after) {
  const following = (node) => !after || after.compareDocumentPosition(node) === Node.DOCUMENT_POSITION_FOLLOWING;
  const between = (node) => !node.data.trim() && (node.parentElement === root || BLOCK_LISTS.has(node.parentElement.tagName));
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const rest = [];
  while (walker.nextNode()) {
    if (following(walker.currentNode) && !between(walker.currentNode)) rest.push(walker.currentNode);
  }
  for (const node of rest) {
    if (node.parentElement.classList.contains("w")) {
      node.parentElement.classList.add("unheard");
      continue;
    }
    const faded = document.createElement("span");
    faded.className = "unheard";
    node.replaceWith(faded);
    faded.append(node);
  }
  // list markers are not text: their items carry the colour
  for (const item of root.querySelectorAll("li")) if (following(item)) item.classList.add("unheard");
}

// -- audio -------------------------------------------------------------------------------------
class Player {
  async start() {
    this.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await this.ctx.audioWorklet.addModule("/static/pcm-player.js");
    this.node = new AudioWorkletNode(this.ctx, "pcm-player", { outputChannelCount: [1] });
    // muting silences the speaker only: the words still light up in time, as a reading guide
    this.volume = this.ctx.createGain();
    this.node.connect(this.volume).connect(this.ctx.destination);
    this.played = 0;
    this.buffered = 0;
    this.node.port.onmessage = (event) => {
      const m = event.data;
      this.played = m.played;
      this.buffered = m.buffered;
      stats.rendered = m.rendered;
      stats.played = m.played;
      stats.heard = this.heardSeconds();
      if (reply) reply.highlight(stats.heard);
      refresh();
    };
  }

  set muted(on) {
    this.volume.gain.value = on ? 0 : 1;
  }

  resume() {
    if (this.ctx.state !== "running") this.ctx.resume();
  }

  // seconds of the current reply that reached the speaker
  heardSeconds() {
    return Math.max(0, this.played / RATE - (this.ctx.outputLatency || 0));
  }

  get playing() {
    return this.buffered > 0;
  }

  newReply() {
    this.played = 0;
    this.node.port.postMessage({ type: "reply" });
  }

  push(buffer) {
    const pcm = new Int16Array(buffer);
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    this.buffered += samples.length;
    this.node.port.postMessage({ type: "audio", samples }, [samples.buffer]);
  }

  stop() {
    const heard = this.heardSeconds();
    this.buffered = 0;
    this.node.port.postMessage({ type: "stop" });
    return heard;
  }
}

// -- one bot reply on screen -------------------------------------------------------------------
class Reply {
  constructor() {
    this.el = bubble("bot");
    this.body = document.createElement("div");
    this.body.className = "md";
    this.el.append(this.body);
    this.chat = chat;
    this.text = "";
    this.words = []; // the server's word events: {word, start, end}
    this.placed = []; // per word event: its [first, last] span, or null
    this.spans = [];
    this.aligner = null; // places word events on the spans
    this.lit = null; // the spans lit now
    this.seconds = 0;
    this.live = false; // text went to the server: an end event will come
    this.end = null; // that end event
    this.over = false; // barged in: nothing more of it is played
    this.cut = false; // the unheard rest is greyed out
    this.textDone = false;
    this.abort = new AbortController();
    this.ended = new Promise((resolve) => (this.resolveEnd = resolve));
  }

  sendText(piece) {
    if (!this.live) {
      this.live = true;
      awaiting.push(this);
    }
    send({ type: "text", text: piece });
  }

  addText(piece) {
    const follow = nearBottom();
    this.text += piece;
    this.body.innerHTML = renderMarkdown(this.text);
    this.spans = wrapWords(this.body);
    this.aligner = new Aligner(this.spans);
    this.placed = this.words.map((w) => this.place(w));
    this.lit = null;
    this.highlight(this.seconds);
    if (follow) log.scrollTop = log.scrollHeight;
  }

  place(word) {
    const at = this.aligner.place(word.word);
    if (at) this.spans[at[0]].dataset.start = word.start;
    return at;
  }

  addWord(event) {
    this.words.push(event);
    this.placed.push(this.aligner ? this.place(event) : null);
  }

  // lights the word being heard at `seconds` on the reply's audio timeline
  highlight(seconds) {
    if (this.over) return;
    this.seconds = seconds;
    let i = -1;
    while (i + 1 < this.words.length && this.words[i + 1].start < seconds) i++;
    const word = this.words[i];
    this.light(word && seconds < (word.end ?? Infinity) ? this.placed[i] : null);
  }

  light(range) {
    if (range === this.lit) return;
    for (const [lit, on] of [[this.lit, false], [range, true]]) {
      if (lit) for (let k = lit[0]; k <= lit[1]; k++) this.spans[k].classList.toggle("now", on);
    }
    this.lit = range;
  }

  // the reply was cut: what was heard stays as it is, the rest is greyed out
  showHeard(heardText) {
    if (this.cut) return;
    this.cut = this.over = true;
    this.light(null);
    if (!this.text) {
      this.el.remove();
      return;
    }
    const aligner = new Aligner(this.spans);
    let last = -1;
    for (const match of heardText.matchAll(WORD)) {
      const at = aligner.place(match[0]);
      if (at) last = at[1];
    }
    fadeAfter(this.body, this.spans[last] ?? null);
    const mark = document.createElement("div");
    mark.className = "mark";
    mark.textContent = last < 0 ? "Interrupted before any of it was heard" : "Interrupted · the grey part was not heard";
    this.el.append(mark);
  }
}

// the heard part of `spoken`: up to the last word that started before `seconds` (as the server does)
function heardPart(spoken, words, seconds) {
  let end = 0;
  let pos = 0;
  for (const w of words) {
    if (w.start >= seconds) break;
    const found = spoken.indexOf(w.word, pos);
    if (found < 0) break;
    end = pos = found + w.word.length;
  }
  while (end > 0 && end < spoken.length && !/\s/.test(spoken[end])) end++;
  return spoken.slice(0, end).trim();
}

// -- the WebSocket -----------------------------------------------------------------------------
function connect() {
  clearTimeout(retryTimer);
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/speak`;
  const ws = token ? new WebSocket(url, ["voicekit", `voicekit.token.${b64url(token)}`]) : new WebSocket(url);
  ws.binaryType = "arraybuffer";
  socket = ws;
  let opened = false;
  ws.onmessage = (event) => {
    if (ws !== socket) return;
    const r = awaiting[0];
    if (typeof event.data !== "string") {
      if (r && !r.over) player.push(event.data);
      return;
    }
    const m = JSON.parse(event.data);
    if (m.type === "ready") {
      opened = true;
      retries = 0;
      session = { voice: "", rate: 1 };
      connection = "open";
      refresh();
      (voicesLoaded ? Promise.resolve() : loadVoices()).then(syncConfig);
    } else if (m.type === "word" && r && !r.over) r.addWord(m);
    else if (m.type === "reply_done" || m.type === "interrupted") ended(m);
    else if (m.type === "error") {
      stats.errors.push(m.message);
      note(m.message);
    }
  };
  ws.onclose = () => {
    if (ws !== socket) return;
    socket = null;
    lost(opened);
  };
}

async function lost(wasOpen) {
  dropPending();
  if (!wasOpen) {
    // a browser is not told why a WebSocket was refused: an HTTP request behind the token is
    const probe = await fetch("/health", { headers: auth(), cache: "no-store" }).catch(() => null);
    if (probe && probe.status === 401) {
      askForToken();
      return;
    }
  }
  connection = "retrying";
  refresh();
  retryTimer = setTimeout(connect, RETRY_DELAYS[Math.min(retries++, RETRY_DELAYS.length - 1)]);
}

// a fresh session, to get back the engine's default voice, which config has no name for
function reopen() {
  const old = socket;
  socket = null;
  old.close();
  connection = "connecting";
  refresh();
  connect();
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

// the connection is gone: the replies it was speaking get no end event, so they end here
function dropPending() {
  strayInterrupts = 0;
  const heard = player.stop();
  awaiting.splice(0).forEach((r, i) => {
    r.abort.abort();
    const seconds = i === 0 ? heard : 0;
    finish(r, { type: "interrupted", heard_text: r.words.filter((w) => w.start < seconds).map((w) => w.word).join(" ") });
  });
}

// the server's end event of the oldest reply it was speaking
// interrupts whose reply had already ended: the server answers each with an empty "interrupted"
let strayInterrupts = 0;
function ended(m) {
  stats.ends.push(m);
  if (m.type === "interrupted" && strayInterrupts > 0) {
    strayInterrupts--;
    return;
  }
  const r = awaiting.shift();
  if (r && r.interruptSent && m.type === "reply_done") strayInterrupts++;
  if (r) finish(r, m);
  syncConfig();
}

function finish(r, m) {
  r.end = m;
  const current = r.chat === chat;
  if (m.type === "interrupted") {
    if (current) conversation.push({ role: "assistant", content: m.heard_text + INTERRUPTED });
    r.showHeard(m.heard_text);
  } else if (current) {
    conversation.push({ role: "assistant", content: r.text });
  }
  r.resolveEnd();
  refresh();
}

// -- token -------------------------------------------------------------------------------------
function askForToken() {
  connection = "token";
  $("token-why").textContent = token
    ? "The token this page sent was not accepted: it is wrong, or the server was restarted with a new one."
    : "It was started with --token (or VOICEKIT_TOKEN), and this page has no token to send.";
  $("token-url").textContent = `${location.origin}/#token=YOUR_TOKEN`;
  tokenPanel.hidden = false;
  refresh();
  $("token-input").focus();
}

function useToken(value) {
  token = value;
  tokenPanel.hidden = true;
  connection = "connecting";
  refresh();
  if (socket) reopen();
  else connect();
}

tokenPanel.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token-input").value.trim();
  if (!value) return;
  $("token-input").value = "";
  // kept in the fragment, as if typed there: a reload keeps it, the server never sees it
  window.history.replaceState(null, "", `#token=${encodeURIComponent(value)}`);
  useToken(value);
});

window.addEventListener("hashchange", () => {
  const value = tokenFromHash();
  if (value && value !== token) useToken(value);
});

// -- voice and speed ---------------------------------------------------------------------------
async function loadVoices() {
  try {
    const response = await fetch("/v1/audio/voices", { headers: auth() });
    if (!response.ok) return;
    const listing = await response.json();
    defaultVoice = listing.default_voice;
    // OpenAI's names (alias_of) are other names for these same voices
    for (const v of listing.voices) {
      if (v.alias_of || v.id === "default") continue;
      voiceSelect.append(new Option(v.language ? `${v.name} · ${v.language}` : v.name, v.id));
    }
    voicesLoaded = true;
    voiceSelect.value = localStorage.getItem("voicekit.voice") || "";
    if (voiceSelect.selectedIndex < 0) voiceSelect.value = "";
  } catch {
    // no list: the picker keeps the default voice
  }
}

// config is taken only between replies: a change made during one waits for its end event
function syncConfig() {
  if (connection !== "open" || awaiting.length) return;
  const want = { voice: voiceSelect.value, rate: Number(rateSelect.value) };
  if (!want.voice && session.voice && defaultVoice === "default") {
    reopen();
    return;
  }
  const message = { type: "config" };
  if (want.voice !== session.voice) message.voice = want.voice || defaultVoice;
  if (want.rate !== session.rate) message.rate = want.rate;
  if (Object.keys(message).length === 1) return;
  send(message);
  session = want;
}

voiceSelect.addEventListener("change", () => {
  localStorage.setItem("voicekit.voice", voiceSelect.value);
  syncConfig();
});

rateSelect.value = localStorage.getItem("voicekit.rate") || "1";
if (rateSelect.selectedIndex < 0) rateSelect.value = "1";
rateSelect.addEventListener("change", () => {
  localStorage.setItem("voicekit.rate", rateSelect.value);
  syncConfig();
});

function setMuted(on) {
  muted = on;
  localStorage.setItem("voicekit.muted", on ? "1" : "0");
  muteButton.textContent = on ? "Unmute" : "Mute";
  muteButton.setAttribute("aria-pressed", String(on));
  if (player.volume) player.muted = on;
  refresh();
}

muteButton.addEventListener("click", () => setMuted(!muted));

// -- status and buttons ------------------------------------------------------------------------
function thinking() {
  return Boolean(reply && !reply.over && !reply.text && !reply.textDone);
}

function speaking() {
  return Boolean(reply && !reply.over && (!reply.textDone || (reply.live && !reply.end) || player.playing));
}

// phones have no Esc key
const touch = matchMedia("(pointer: coarse)").matches;
if (touch) document.querySelector("#welcome .hint").textContent = "To interrupt me, tap Stop or just start typing.";

function statusOf() {
  if (connection === "connecting") return ["busy", "Connecting…"];
  if (connection === "retrying") return ["down", "Connection lost · reconnecting…"];
  if (connection === "token") return ["down", "Access token needed"];
  if (connection === "noaudio") return ["down", "No audio output in this browser"];
  if (thinking()) return ["busy", "Thinking…"];
  if (speaking()) return ["busy", `${muted ? "Speaking (muted)" : "Speaking"} · ${touch ? "tap Stop" : "Esc"} to interrupt`];
  return ["ok", "Ready"];
}

function refresh() {
  const [state, text] = statusOf();
  if (statusLine.textContent !== text) statusLine.textContent = text;
  statusLine.dataset.state = state;
  sendButton.disabled = connection !== "open";
  for (const suggestion of suggestions) suggestion.disabled = connection !== "open";
  stopButton.disabled = !speaking();
  welcome.hidden = conversation.length > 0 || connection === "token";
}

// -- barge-in ----------------------------------------------------------------------------------
// stop the reply on screen; resolves once the server's end event is in (so the history is right)
function bargeIn() {
  const r = reply;
  if (!speaking()) return Promise.resolve();
  r.abort.abort();
  const played = player.stop();
  r.highlight(played);
  r.over = true;
  if (r.live && !r.end) {
    r.interruptSent = true;
    send({ type: "interrupt", played });
    refresh();
    return r.ended;
  }
  if (r.end && r.end.type === "reply_done") {
    // the server had sent it all; the rest was only in our buffer
    const heard = heardPart(r.end.text, r.words, played);
    if (r.chat === chat) conversation[conversation.length - 1] = { role: "assistant", content: heard + INTERRUPTED };
    r.showHeard(heard);
  } else if (!r.text) {
    r.showHeard("");
  }
  refresh();
  return Promise.resolve();
}

// -- a turn ------------------------------------------------------------------------------------
async function errorMessage(response) {
  try {
    return (await response.json()).error.message;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function ask(text) {
  if (connection !== "open") return;
  await bargeIn();
  player.resume();
  bubble("user", text);
  conversation.push({ role: "user", content: text });
  const r = (reply = new Reply());
  stats.replies++;
  player.newReply();
  refresh();
  try {
    const response = await fetch("/v1/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...auth() },
      body: JSON.stringify({ messages: conversation }),
      signal: r.abort.signal,
    });
    if (response.status === 401) {
      r.textDone = true;
      r.showHeard("");
      askForToken();
      return;
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (r.over) return;
      r.addText(value);
      r.sendText(value);
      refresh();
    }
    r.textDone = true;
    if (r.live) send({ type: "done" });
  } catch (error) {
    r.textDone = true;
    if (error.name !== "AbortError") {
      // what came before the failure is spoken to its end
      if (r.live) send({ type: "done" });
      else r.showHeard("");
      note(error instanceof TypeError ? "No reply: the server could not be reached." : `No reply: ${error.message}`);
    }
  }
  refresh();
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || connection !== "open") return;
  input.value = "";
  ask(text);
});

for (const suggestion of suggestions) {
  suggestion.addEventListener("click", () => ask(suggestion.textContent));
}

stopButton.addEventListener("click", () => {
  bargeIn();
  input.focus();
});

$("new-chat").addEventListener("click", () => {
  bargeIn();
  chat++;
  conversation.length = 0;
  reply = null;
  for (const el of log.querySelectorAll(".msg")) el.remove();
  refresh();
  input.focus();
});

// typing while the bot speaks stops it, like a person would
input.addEventListener("input", () => {
  if (input.value && speaking()) bargeIn();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") bargeIn();
});

player = new Player();
setMuted(muted);
player.start().then(
  () => {
    player.muted = muted;
    connect();
  },
  (error) => {
    connection = "noaudio";
    note(`This browser could not start audio playback (${error.message}).`);
    refresh();
  },
);
refresh();
