"""The guide's "Interactive Chat Bot": one stream per response, fed as the text arrives.

Streams of one TTS play in the order they were created, so a new response
queues behind the one still playing. ``finish_response`` drops the finished
stream, so the caller keeps the last one to wait for it before cleaning up.
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
        self.stream = self.tts.create_stream()


bot = ChatBot()
for token in ["Hello! ", "I am ", "a chat bot. ", "I speak ", "while I think."]:
    bot.respond(token)
    time.sleep(0.05)  # tokens arrive like an LLM's
bot.finish_response()

answer = bot.stream
bot.respond("This is my second answer.")
bot.finish_response()
answer.wait_until_done()  # it plays after the first answer: both were heard
bot.tts.cleanup()
