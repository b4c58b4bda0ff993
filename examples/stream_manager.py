"""The guide's "Complete Streaming Application": a StreamManager with a monitor thread.

Two changes keep it correct under threads: the monitor watches the stream it
was started for (the guide's reads ``self.stream``, which ``stop_stream`` sets
to None under its feet), and ``stop_stream`` stops and joins it even when the
stream failed, so no thread outlives the manager.
"""

import threading
import time

from _common import make_tts


class StreamManager:
    def __init__(self):
        # The guide: PollyTTS(PollyClient(credentials=('region', 'key_id', 'access_key')))
        self.tts = make_tts()
        self.stream = None
        self.is_active = False
        self.monitor = None

    def start_stream(self):
        self.stream = self.tts.create_stream()
        self.is_active = True

        # Start monitoring thread
        self.monitor = threading.Thread(target=self._monitor_stream, args=(self.stream,), name="monitor")
        self.monitor.start()

    def _monitor_stream(self, stream):
        while self.is_active:
            if stream.buffer_full():
                print("Buffer full, waiting...")
                time.sleep(0.1)
            time.sleep(0.01)

    def feed_text(self, text):
        if not self.stream:
            self.start_stream()
        self.stream.feed(text)

    def stop_stream(self):
        if self.stream:
            try:
                self.stream.done()
                self.stream.wait_until_done()
                self.stream.close()
            finally:
                self.is_active = False
                self.monitor.join()
                self.stream = None

    def cleanup(self):
        self.stop_stream()
        self.tts.cleanup()


# Usage example
manager = StreamManager()
try:
    manager.start_stream()

    # Feed text in chunks
    manager.feed_text("First part of the speech. ")
    time.sleep(1)
    manager.feed_text("Second part of the speech. ")
    time.sleep(1)
    manager.feed_text("Final part of the speech.")

    # Stop streaming
    manager.stop_stream()
finally:
    manager.cleanup()
