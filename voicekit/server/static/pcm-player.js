// The AudioWorklet that plays the server's PCM: a queue of Float32 blocks, drained 128 frames at a time.
// It counts the frames of the current reply it has rendered, which is the "played" position the page
// reports on barge-in and uses to light up the words as they are heard.
class PcmPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];
    this.offset = 0;      // read position in queue[0]
    this.buffered = 0;    // frames queued
    this.played = 0;      // frames of the current reply rendered
    this.rendered = 0;    // frames of audio rendered in all (for tests and stats)
    this.quanta = 0;
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === "audio") {
        this.queue.push(m.samples);
        this.buffered += m.samples.length;
      } else if (m.type === "stop") {  // barge-in: silence from the next render quantum on
        this.queue = [];
        this.offset = 0;
        this.buffered = 0;
        this.report();
      } else if (m.type === "reply") {  // a new reply: its timeline starts at 0
        this.played = 0;
        this.report();
      }
    };
  }

  report() {
    this.port.postMessage({ played: this.played, rendered: this.rendered, buffered: this.buffered });
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length) {
      const head = this.queue[0];
      const n = Math.min(out.length - i, head.length - this.offset);
      out.set(head.subarray(this.offset, this.offset + n), i);
      i += n;
      this.offset += n;
      if (this.offset === head.length) {
        this.queue.shift();
        this.offset = 0;
      }
    }
    out.fill(0, i);
    this.buffered -= i;
    this.played += i;
    this.rendered += i;
    // about every 21 ms while playing, and once when the queue runs dry
    if ((i && ++this.quanta % 4 === 0) || (i && !this.queue.length)) this.report();
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayer);
