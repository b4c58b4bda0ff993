// The voicekit chat page: the reply text comes from POST /v1/chat, goes to the WebSocket
// /v1/speak as it arrives, and the speech comes back as PCM played by an AudioWorklet.
// Barge-in (typing, Esc, or sending) stops local playback at once and reports the played
// position; the history keeps only what was heard, as `voicekit chat` does.

const RATE = 24000;
const INTERRUPTED = " [interrupted]";
// #token=T in the address (URL-encoded; "+" stays "+"): the fragment never reaches the server
const tokenMatch = location.hash.match(/[#&]token=([^&]*)/);
const token = tokenMatch ? decodeURIComponent(tokenMatch[1]) : null;
const log = document.getElementById("log");
const input = document.getElementById("input");
const statusLine = document.getElementById("status");

// for tests and the curious: what the worklet rendered and what the page showed
const stats = (window.voicekitStats = { rendered: 0, played: 0, heard: 0, replies: 0, ends: [], errors: [] });

const history = [];
let socket = null;
let player = null;
let reply = null; // the newest reply on screen
const awaiting = []; // replies the server is speaking, oldest first: frames and words belong to the first

function b64url(text) {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function show(kind, text) {
  const el = document.createElement("div");
  el.className = `msg ${kind}`;
  el.textContent = text;
  log.append(el);
  log.scrollTop = log.scrollHeight;
  return el;
}

function setStatus(text) {
  statusLine.textContent = text;
}

// -- audio -------------------------------------------------------------------------------
class Player {
  async start() {
    this.ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await this.ctx.audioWorklet.addModule("/static/pcm-player.js");
    this.node = new AudioWorkletNode(this.ctx, "pcm-player", { outputChannelCount: [1] });
    this.node.connect(this.ctx.destination);
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
    };
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

// -- one bot reply on screen -----------------------------------------------------------------
class Reply {
  constructor() {
    this.el = show("bot", "");
    this.textEl = document.createElement("div");
    this.spokenEl = document.createElement("div");
    this.spokenEl.className = "spoken";
    this.el.append(this.textEl, this.spokenEl);
    this.text = "";
    this.words = []; // {word, start, end, el}
    this.live = false; // text went to the server: an end event will come
    this.end = null; // that end event
    this.over = false; // barged in: nothing more of it is played
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
    this.text += piece;
    this.textEl.textContent = this.text;
    log.scrollTop = log.scrollHeight;
  }

  addWord(event) {
    const el = document.createElement("span");
    el.textContent = event.word;
    el.dataset.start = event.start;
    this.spokenEl.append(el, " ");
    this.words.push({ ...event, el });
  }

  highlight(seconds) {
    for (const w of this.words) {
      const heard = w.start < seconds;
      w.el.classList.toggle("heard", heard);
      w.el.classList.toggle("now", heard && seconds < w.end);
    }
  }

  mark(note) {
    const el = document.createElement("span");
    el.className = "mark";
    el.textContent = note;
    this.textEl.append(el);
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

// -- the WebSocket ------------------------------------------------------------------------------
function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/speak`;
  socket = token ? new WebSocket(url, ["voicekit", `voicekit.token.${b64url(token)}`]) : new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (event) => {
    const r = awaiting[0];
    if (typeof event.data !== "string") {
      if (r && !r.over) player.push(event.data);
      return;
    }
    const m = JSON.parse(event.data);
    if (m.type === "ready") setStatus(`ready: ${m.sample_rate} Hz`);
    else if (m.type === "word" && r && !r.over) r.addWord(m);
    else if (m.type === "reply_done" || m.type === "interrupted") ended(m);
    else if (m.type === "error") {
      stats.errors.push(m.message);
      show("note", m.message);
    }
  };
  socket.onclose = () => setStatus("disconnected: reload the page to reconnect");
}

function send(message) {
  socket.send(JSON.stringify(message));
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
  if (!r) return;
  r.end = m;
  if (m.type === "interrupted") {
    history.push({ role: "assistant", content: m.heard_text + INTERRUPTED });
    r.mark(INTERRUPTED);
    setStatus("interrupted");
  } else {
    history.push({ role: "assistant", content: r.text });
    setStatus("ready");
  }
  r.resolveEnd();
}

// -- barge-in ------------------------------------------------------------------------------------
function speaking() {
  return Boolean(reply && !reply.over && (!reply.textDone || (reply.live && !reply.end) || player.playing));
}

// stop the reply on screen; resolves once the server's end event is in (so history is right)
function bargeIn() {
  const r = reply;
  if (!speaking()) return Promise.resolve();
  r.over = true;
  r.abort.abort();
  const played = player.stop();
  r.highlight(played);
  if (r.live && !r.end) {
    r.interruptSent = true;
    send({ type: "interrupt", played });
    return r.ended;
  }
  if (r.end && r.end.type === "reply_done") {
    // the server had sent it all; the rest was only in our buffer
    history[history.length - 1] = { role: "assistant", content: heardPart(r.end.text, r.words, played) + INTERRUPTED };
    r.mark(INTERRUPTED);
    setStatus("interrupted");
  }
  return Promise.resolve();
}

// -- a turn ------------------------------------------------------------------------------------
async function ask(text) {
  await bargeIn();
  player.resume();
  show("user", text);
  history.push({ role: "user", content: text });
  const r = (reply = new Reply());
  stats.replies++;
  player.newReply();
  setStatus("thinking…");
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch("/v1/chat", {
      method: "POST",
      headers,
      body: JSON.stringify({ messages: history }),
      signal: r.abort.signal,
    });
    if (!response.ok) throw new Error((await response.json()).error.message);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    setStatus("speaking… (type or press Esc to stop)");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (r.over) return;
      r.addText(value);
      r.sendText(value);
    }
    r.textDone = true;
    if (r.live) send({ type: "done" });
  } catch (error) {
    if (error.name !== "AbortError") show("note", `error: ${error.message}`);
    r.textDone = true;
  }
}

document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  input.value = "";
  if (text) ask(text);
});

// typing while the bot speaks stops it, like a person would
input.addEventListener("input", () => {
  if (input.value && speaking()) bargeIn();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") bargeIn();
});

player = new Player();
player.start().then(connect, (error) => setStatus(`no audio: ${error.message}`));
