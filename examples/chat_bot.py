"""The guide's "Interactive Chat Bot": one stream per response, fed as the text arrives.

Streams of one TTS play in the order they were created, so a new response
queues behind the one still playing. ``finish_response`` returns the finished
stream so the caller can wait for it (the guide's version drops it).
"""

import time

from _common import make_tts


class ChatBot:
    def __init__(self):
        self.tts = make_tts()
        self.stream = self.tts.create_stream()

    def respond(self, text):
        # Stream response immediately
        self.stream.feed(text)

    def finish_response(self):
        self.stream.done()
        finished, self.stream = self.stream, self.tts.create_stream()
        return finished


bot = ChatBot()
for token in ["Hello! ", "I am ", "a chat bot. ", "I speak ", "while I think."]:
    bot.respond(token)
    time.sleep(0.05)  # tokens arrive like an LLM's
bot.finish_response()

bot.respond("This is my second answer.")
bot.finish_response().wait_until_done()
bot.tts.cleanup()
