"""Per-language sentence cases, written for voicekit by its developers (not taken from any suite).

Each case is a text as a chat reply would contain it and the sentences a listener expects.
tests/test_languages.py checks them; scripts/bench_text.py scores voicekit and pysbd on them.
The rules in voicekit/text/data were tuned on CASES; LATER_CASES were written afterwards and
passed unchanged on their first run (72 of 72), so they are the held-out check.
"""

from __future__ import annotations

Case = tuple[str, list[str]]

CASES: dict[str, list[Case]] = {
    "en": [
        ("Sure. Let me check that for you.", ["Sure.", "Let me check that for you."]),
        ("Okay! Here is the plan.", ["Okay!", "Here is the plan."]),
        ("Ok. Fine. Go ahead.", ["Ok.", "Fine.", "Go ahead."]),
        (
            "That's it! Let me know if you have questions 🚀 Happy coding!",
            ["That's it!", "Let me know if you have questions 🚀", "Happy coding!"],
        ),
        ("Great question 👍 The answer is 42.", ["Great question 👍", "The answer is 42."]),
        ("All done! 🎉 Next we deploy.", ["All done! 🎉", "Next we deploy."]),
        ("I love it 😍 but it costs too much.", ["I love it 😍 but it costs too much."]),
        ("Overview\nThe service has three parts.", ["Overview", "The service has three parts."]),
        ("Next steps\nInstall the package and run it.", ["Next steps", "Install the package and run it."]),
        (
            "Dr. Lee arrived at 9 a.m. and left at noon. She was tired.",
            ["Dr. Lee arrived at 9 a.m. and left at noon.", "She was tired."],
        ),
        ("The U.S. Senate met today. It voted 52 to 48.", ["The U.S. Senate met today.", "It voted 52 to 48."]),
        ("Thanks!\nAnything else?", ["Thanks!", "Anything else?"]),
    ],
    "de": [
        (
            "Am 3. Oktober feiern wir den Tag der Deutschen Einheit. Das ist ein Feiertag.",
            ["Am 3. Oktober feiern wir den Tag der Deutschen Einheit.", "Das ist ein Feiertag."],
        ),
        ("Der 1. FC Köln hat gewonnen. Die Fans jubeln.", ["Der 1. FC Köln hat gewonnen.", "Die Fans jubeln."]),
        (
            "Herr Dr. Müller kommt um 10 Uhr. Bitte warten Sie.",
            ["Herr Dr. Müller kommt um 10 Uhr.", "Bitte warten Sie."],
        ),
        (
            "Wir brauchen z.B. Mehl, Zucker usw. Dann backen wir.",
            ["Wir brauchen z.B. Mehl, Zucker usw.", "Dann backen wir."],
        ),
        ("Das steht auf S. 12 im Buch. Lies es bitte.", ["Das steht auf S. 12 im Buch.", "Lies es bitte."]),
        (
            "Er wurde am 24. Dezember 1990 geboren. Heute ist er Arzt.",
            ["Er wurde am 24. Dezember 1990 geboren.", "Heute ist er Arzt."],
        ),
        ("Wie geht es dir? Mir geht es gut!", ["Wie geht es dir?", "Mir geht es gut!"]),
        (
            "Prof. Schmidt und Fr. Meier sind da. Sie warten im Büro.",
            ["Prof. Schmidt und Fr. Meier sind da.", "Sie warten im Büro."],
        ),
        ("Zum 2. Mal gewinnt sie den Preis. Glückwunsch!", ["Zum 2. Mal gewinnt sie den Preis.", "Glückwunsch!"]),
        (
            "Die Firma hat ca. 500 Mitarbeiter. Das sind viele.",
            ["Die Firma hat ca. 500 Mitarbeiter.", "Das sind viele."],
        ),
        ("Das Spiel endete 2:1. Danach feierten alle.", ["Das Spiel endete 2:1.", "Danach feierten alle."]),
        ("Nr. 5 ist mein Favorit. Und deiner?", ["Nr. 5 ist mein Favorit.", "Und deiner?"]),
    ],
    "fr": [
        ("M. Dupont est arrivé hier. Il est fatigué.", ["M. Dupont est arrivé hier.", "Il est fatigué."]),
        ("Bonjour ! Comment allez-vous ?", ["Bonjour !", "Comment allez-vous ?"]),
        (
            "Mme Martin et Mlle Durand sont là. Elles attendent.",
            ["Mme Martin et Mlle Durand sont là.", "Elles attendent."],
        ),
        ("Voir p. 45 pour les détails. Merci.", ["Voir p. 45 pour les détails.", "Merci."]),
        (
            "Il a acheté des pommes, des poires, etc. Ensuite il est parti.",
            ["Il a acheté des pommes, des poires, etc.", "Ensuite il est parti."],
        ),
        (
            "Le Dr. Bernard consulte le lundi. Prenez rendez-vous.",
            ["Le Dr. Bernard consulte le lundi.", "Prenez rendez-vous."],
        ),
        ("« Tu viens ? » a-t-il demandé. Elle a dit oui.", ["« Tu viens ? » a-t-il demandé.", "Elle a dit oui."]),
        ("Il est né en 1985. Il habite à Paris.", ["Il est né en 1985.", "Il habite à Paris."]),
        (
            "Attention : le train part à 10 h 30. Ne soyez pas en retard !",
            ["Attention : le train part à 10 h 30.", "Ne soyez pas en retard !"],
        ),
        ("Le prix est de 3,50 €. C'est raisonnable.", ["Le prix est de 3,50 €.", "C'est raisonnable."]),
        ("Quoi ?! Tu plaisantes ?", ["Quoi ?!", "Tu plaisantes ?"]),
    ],
    "es": [
        ("El Sr. García llegó tarde. Nadie lo esperaba.", ["El Sr. García llegó tarde.", "Nadie lo esperaba."]),
        ("¿Cómo estás? ¡Muy bien!", ["¿Cómo estás?", "¡Muy bien!"]),
        ("Hola. ¿Qué tal?", ["Hola.", "¿Qué tal?"]),
        (
            "La Sra. López y la Dra. Pérez trabajan juntas. Son amigas.",
            ["La Sra. López y la Dra. Pérez trabajan juntas.", "Son amigas."],
        ),
        ("Vivo en EE. UU. desde 2010. Me gusta mucho.", ["Vivo en EE. UU. desde 2010.", "Me gusta mucho."]),
        ("Compré pan, leche, etc. Luego volví a casa.", ["Compré pan, leche, etc.", "Luego volví a casa."]),
        ("Ver pág. 23 del libro. Es importante.", ["Ver pág. 23 del libro.", "Es importante."]),
        ("Ud. tiene razón. Lo siento.", ["Ud. tiene razón.", "Lo siento."]),
        ("¡Qué bonito día! ¿Salimos?", ["¡Qué bonito día!", "¿Salimos?"]),
        ("El 5 de mayo es fiesta. ¿Lo sabías?", ["El 5 de mayo es fiesta.", "¿Lo sabías?"]),
        ("Llamé al Lic. Martínez ayer. No contestó.", ["Llamé al Lic. Martínez ayer.", "No contestó."]),
    ],
    "it": [
        ("Il Sig. Rossi è arrivato. La riunione inizia.", ["Il Sig. Rossi è arrivato.", "La riunione inizia."]),
        ("La Sig.ra Bianchi lavora qui. È molto brava.", ["La Sig.ra Bianchi lavora qui.", "È molto brava."]),
        ("Il Dott. Verdi visita il lunedì. Prenota prima.", ["Il Dott. Verdi visita il lunedì.", "Prenota prima."]),
        (
            "Abbiamo comprato pane, latte, ecc. Poi siamo tornati.",
            ["Abbiamo comprato pane, latte, ecc.", "Poi siamo tornati."],
        ),
        ("Vedi pag. 12 per i dettagli. Grazie!", ["Vedi pag. 12 per i dettagli.", "Grazie!"]),
        ("Come stai? Io sto bene.", ["Come stai?", "Io sto bene."]),
        ("L'Avv. Neri ha vinto la causa. Che bello!", ["L'Avv. Neri ha vinto la causa.", "Che bello!"]),
        ("Ci vediamo alle 18.30. Non tardare!", ["Ci vediamo alle 18.30.", "Non tardare!"]),
        (
            "La Prof.ssa Conti insegna storia. Gli studenti la adorano.",
            ["La Prof.ssa Conti insegna storia.", "Gli studenti la adorano."],
        ),
        (
            "Fiat S.p.A. ha sede a Torino. È un'azienda storica.",
            ["Fiat S.p.A. ha sede a Torino.", "È un'azienda storica."],
        ),
        ("Pronto? Sì, sono io.", ["Pronto?", "Sì, sono io."]),
    ],
    "pt": [
        ("O Sr. Silva chegou cedo. Ele estava feliz.", ["O Sr. Silva chegou cedo.", "Ele estava feliz."]),
        ("A Dra. Costa atende hoje. Ligue para marcar.", ["A Dra. Costa atende hoje.", "Ligue para marcar."]),
        ("Comprei arroz, feijão, etc. Depois fui embora.", ["Comprei arroz, feijão, etc.", "Depois fui embora."]),
        ("Veja a pág. 10 do livro. É importante.", ["Veja a pág. 10 do livro.", "É importante."]),
        ("Tudo bem? Sim, tudo ótimo!", ["Tudo bem?", "Sim, tudo ótimo!"]),
        (
            "A Sra. Souza mora na Av. Paulista. Ela gosta de lá.",
            ["A Sra. Souza mora na Av. Paulista.", "Ela gosta de lá."],
        ),
        ("O Prof. Almeida deu aula. Todos gostaram.", ["O Prof. Almeida deu aula.", "Todos gostaram."]),
        ("Moro no Brasil desde 2015. Adoro o país.", ["Moro no Brasil desde 2015.", "Adoro o país."]),
        ("Que dia lindo! Vamos sair?", ["Que dia lindo!", "Vamos sair?"]),
        ("O preço é R$ 25,90. Está barato.", ["O preço é R$ 25,90.", "Está barato."]),
        ("A empresa Alfa Ltda. foi vendida ontem.", ["A empresa Alfa Ltda. foi vendida ontem."]),
    ],
    "nl": [
        ("Dhr. Jansen is er niet. Hij komt morgen.", ["Dhr. Jansen is er niet.", "Hij komt morgen."]),
        ("Mevr. de Vries belde gisteren. Ze wil je spreken.", ["Mevr. de Vries belde gisteren.", "Ze wil je spreken."]),
        (
            "We kochten brood, kaas, enz. Daarna gingen we naar huis.",
            ["We kochten brood, kaas, enz.", "Daarna gingen we naar huis."],
        ),
        ("Zie blz. 12 voor meer informatie. Bedankt!", ["Zie blz. 12 voor meer informatie.", "Bedankt!"]),
        ("Hoe gaat het? Prima, dank je!", ["Hoe gaat het?", "Prima, dank je!"]),
        ("Dr. Bakker werkt bijv. in Utrecht. Hij is arts.", ["Dr. Bakker werkt bijv. in Utrecht.", "Hij is arts."]),
        (
            "Ik woon sinds 2012 in Amsterdam. Het is een mooie stad.",
            ["Ik woon sinds 2012 in Amsterdam.", "Het is een mooie stad."],
        ),
        ("Prof. Visser geeft vandaag les. De zaal is vol.", ["Prof. Visser geeft vandaag les.", "De zaal is vol."]),
        ("Wat een mooie dag! Zullen we gaan fietsen?", ["Wat een mooie dag!", "Zullen we gaan fietsen?"]),
        ("Het kost ca. 20 euro. Dat is niet duur.", ["Het kost ca. 20 euro.", "Dat is niet duur."]),
        ("Ir. Smit ontwierp de brug. Die is beroemd.", ["Ir. Smit ontwierp de brug.", "Die is beroemd."]),
    ],
    "ru": [
        ("Привет! Как дела?", ["Привет!", "Как дела?"]),
        ("Он родился в 1990 г. Потом переехал в Москву.", ["Он родился в 1990 г.", "Потом переехал в Москву."]),
        ("Я живу в г. Москва. Это большой город.", ["Я живу в г. Москва.", "Это большой город."]),
        ("Мы купили хлеб, молоко и т.д. Потом пошли домой.", ["Мы купили хлеб, молоко и т.д.", "Потом пошли домой."]),
        ("А. С. Пушкин — великий поэт. Его все знают.", ["А. С. Пушкин — великий поэт.", "Его все знают."]),
        ("Смотрите рис. 3 на с. 15. Там всё понятно.", ["Смотрите рис. 3 на с. 15.", "Там всё понятно."]),
        ("Проф. Иванов читает лекцию. Студенты слушают.", ["Проф. Иванов читает лекцию.", "Студенты слушают."]),
        ("Это стоит 500 руб. Недорого.", ["Это стоит 500 руб.", "Недорого."]),
        ("Что случилось? Ничего страшного.", ["Что случилось?", "Ничего страшного."]),
        (
            "Он работает в компании, напр. в отделе продаж. Ему нравится.",
            ["Он работает в компании, напр. в отделе продаж.", "Ему нравится."],
        ),
        ("Встреча в 10:00. Не опаздывайте!", ["Встреча в 10:00.", "Не опаздывайте!"]),
    ],
    "zh": [
        ("你好。今天天气很好。", ["你好。", "今天天气很好。"]),
        ("你吃饭了吗？我还没吃。", ["你吃饭了吗？", "我还没吃。"]),
        ("太好了！我们走吧。", ["太好了！", "我们走吧。"]),
        ("“好的。”“没问题。”", ["“好的。”", "“没问题。”"]),
        ("价格是3.5元。很便宜！", ["价格是3.5元。", "很便宜！"]),
        ("这是第一点；这是第二点。", ["这是第一点；这是第二点。"]),
        ("我们用Python 3.11写代码。效果不错。", ["我们用Python 3.11写代码。", "效果不错。"]),
        ("真的吗？！太棒了。", ["真的吗？！", "太棒了。"]),
        ("明天见！晚安。", ["明天见！", "晚安。"]),
        (
            "北京是中国的首都。上海是最大的城市。广州在南方。",
            ["北京是中国的首都。", "上海是最大的城市。", "广州在南方。"],
        ),
        ("好。我知道了。", ["好。", "我知道了。"]),
    ],
    "ja": [
        ("こんにちは。元気ですか？", ["こんにちは。", "元気ですか？"]),
        ("ありがとうございます！また明日。", ["ありがとうございます！", "また明日。"]),
        ("「はい。」と彼は言った。", ["「はい。」と彼は言った。"]),
        ("今日は雨です。傘を持っていきます。", ["今日は雨です。", "傘を持っていきます。"]),
        ("本当ですか？すごいですね！", ["本当ですか？", "すごいですね！"]),
        ("価格は3.5万円です。安いですね。", ["価格は3.5万円です。", "安いですね。"]),
        ("東京に行きました｡楽しかったです｡", ["東京に行きました｡", "楽しかったです｡"]),
        ("田中さんは来ますか？わかりません。", ["田中さんは来ますか？", "わかりません。"]),
        ("「おはよう！」「おはよう。」", ["「おはよう！」", "「おはよう。」"]),
        (
            "バージョン2.0をインストールしました。問題ありません。",
            ["バージョン2.0をインストールしました。", "問題ありません。"],
        ),
        ("はい。そうです。", ["はい。", "そうです。"]),
    ],
    "hi": [
        ("मैं घर जा रहा हूँ। तुम कहाँ हो?", ["मैं घर जा रहा हूँ।", "तुम कहाँ हो?"]),
        ("आज मौसम अच्छा है। चलो बाहर चलें!", ["आज मौसम अच्छा है।", "चलो बाहर चलें!"]),
        ("डॉ. शर्मा कल आएंगे। वे बहुत अच्छे हैं।", ["डॉ. शर्मा कल आएंगे।", "वे बहुत अच्छे हैं।"]),
        ("क्या तुम आओगे? हाँ, ज़रूर।", ["क्या तुम आओगे?", "हाँ, ज़रूर।"]),
        ("यह किताब 250 रुपये की है। बहुत सस्ती है।", ["यह किताब 250 रुपये की है।", "बहुत सस्ती है।"]),
        (
            "भारत एक बड़ा देश है। यहाँ कई भाषाएँ बोली जाती हैं।",
            ["भारत एक बड़ा देश है।", "यहाँ कई भाषाएँ बोली जाती हैं।"],
        ),
        ("वाह! क्या बात है।", ["वाह!", "क्या बात है।"]),
        ("प्रो. वर्मा पढ़ाते हैं। छात्र खुश हैं।", ["प्रो. वर्मा पढ़ाते हैं।", "छात्र खुश हैं।"]),
        ("संस्करण 2.5 जारी हुआ। इसे इंस्टॉल करें।", ["संस्करण 2.5 जारी हुआ।", "इसे इंस्टॉल करें।"]),
        ("धन्यवाद। फिर मिलेंगे।", ["धन्यवाद।", "फिर मिलेंगे।"]),
        ("राम ने कहा, “मैं आऊँगा।” फिर वह चला गया।", ["राम ने कहा, “मैं आऊँगा।”", "फिर वह चला गया।"]),
        ("ए. आर. रहमान संगीतकार हैं। उन्होंने कई गाने बनाए।", ["ए. आर. रहमान संगीतकार हैं।", "उन्होंने कई गाने बनाए।"]),
    ],
    "ar": [
        ("كيف حالك؟ أنا بخير.", ["كيف حالك؟", "أنا بخير."]),
        ("مرحبا! أهلا وسهلا.", ["مرحبا!", "أهلا وسهلا."]),
        ("ذهبت إلى السوق. اشتريت خبزا.", ["ذهبت إلى السوق.", "اشتريت خبزا."]),
        ("د. أحمد طبيب ماهر. يعمل في المستشفى.", ["د. أحمد طبيب ماهر.", "يعمل في المستشفى."]),
        ("هل أنت جاهز؟ نعم، لنبدأ!", ["هل أنت جاهز؟", "نعم، لنبدأ!"]),
        ("السعر 25.5 دينار. هذا رخيص.", ["السعر 25.5 دينار.", "هذا رخيص."]),
        ("اشترينا الخبز والحليب إلخ. ثم عدنا إلى البيت.", ["اشترينا الخبز والحليب إلخ.", "ثم عدنا إلى البيت."]),
        ("الإصدار 3.1 متاح الآن. جربه!", ["الإصدار 3.1 متاح الآن.", "جربه!"]),
        ("شكرا لك. إلى اللقاء.", ["شكرا لك.", "إلى اللقاء."]),
        ("انظر ص. 15 من الكتاب. ستجد الجواب.", ["انظر ص. 15 من الكتاب.", "ستجد الجواب."]),
        ("قال: «سأعود غدا.» ثم خرج.", ["قال: «سأعود غدا.»", "ثم خرج."]),
    ],
}

LATER_CASES: dict[str, list[Case]] = {
    "en": [
        ("Got it! I'll update the file now.", ["Got it!", "I'll update the file now."]),
        ("Here's the fix 🔧 It changes one line.", ["Here's the fix 🔧", "It changes one line."]),
        ("Prerequisites\nYou need Python 3.10 or later.", ["Prerequisites", "You need Python 3.10 or later."]),
        ("No. That won't work, sadly.", ["No.", "That won't work, sadly."]),
        (
            "Mrs. Brown lives on Elm St. in Boston. Her dog is named Max.",
            ["Mrs. Brown lives on Elm St. in Boston.", "Her dog is named Max."],
        ),
        (
            "The meeting is at 3 p.m. on Friday. Don't be late!",
            ["The meeting is at 3 p.m. on Friday.", "Don't be late!"],
        ),
    ],
    "de": [
        ("Klar! Ich helfe dir gern.", ["Klar!", "Ich helfe dir gern."]),
        (
            "Die Konferenz beginnt am 15. März in Berlin. Melde dich an.",
            ["Die Konferenz beginnt am 15. März in Berlin.", "Melde dich an."],
        ),
        (
            "Frau Dr. Schulz hat heute frei. Morgen ist sie wieder da.",
            ["Frau Dr. Schulz hat heute frei.", "Morgen ist sie wieder da."],
        ),
        ("Das ist bzw. war mein Auto. Jetzt fahre ich Rad.", ["Das ist bzw. war mein Auto.", "Jetzt fahre ich Rad."]),
        ("Er belegte den 2. Platz. Wir sind stolz.", ["Er belegte den 2. Platz.", "Wir sind stolz."]),
        ("Warum nicht? Lass es uns versuchen!", ["Warum nicht?", "Lass es uns versuchen!"]),
    ],
    "fr": [
        ("D'accord. Je m'en occupe.", ["D'accord.", "Je m'en occupe."]),
        (
            "Mme Leroy habite au 12, av. Victor Hugo. Elle est médecin.",
            ["Mme Leroy habite au 12, av. Victor Hugo.", "Elle est médecin."],
        ),
        ("Tu es sûr ? Oui, certain.", ["Tu es sûr ?", "Oui, certain."]),
        ("Le musée ouvre à 9 h. Les billets coûtent 15 €.", ["Le musée ouvre à 9 h.", "Les billets coûtent 15 €."]),
        ("Voir le chap. 3 du livre. C'est expliqué.", ["Voir le chap. 3 du livre.", "C'est expliqué."]),
        ("Merci beaucoup ! À bientôt.", ["Merci beaucoup !", "À bientôt."]),
    ],
    "es": [
        ("Claro. Te ayudo ahora mismo.", ["Claro.", "Te ayudo ahora mismo."]),
        ("¿Tienes tiempo mañana? Podemos vernos a las 10.", ["¿Tienes tiempo mañana?", "Podemos vernos a las 10."]),
        (
            "La Srta. Gómez es la nueva profesora. Enseña historia.",
            ["La Srta. Gómez es la nueva profesora.", "Enseña historia."],
        ),
        ("El Dr. Ruiz opera hoy. ¡Deséale suerte!", ["El Dr. Ruiz opera hoy.", "¡Deséale suerte!"]),
        ("Hay unos 300 km hasta Madrid. Es un viaje largo.", ["Hay unos 300 km hasta Madrid.", "Es un viaje largo."]),
        ("Vale, lo haré. Gracias por avisar.", ["Vale, lo haré.", "Gracias por avisar."]),
    ],
    "it": [
        ("Certo! Ti aiuto subito.", ["Certo!", "Ti aiuto subito."]),
        (
            "Il Prof. Ferrari insegna a Bologna. È molto bravo.",
            ["Il Prof. Ferrari insegna a Bologna.", "È molto bravo."],
        ),
        ("Gentile Sig. Marino, la ringraziamo. A presto.", ["Gentile Sig. Marino, la ringraziamo.", "A presto."]),
        ("Dove sei? Ti sto aspettando!", ["Dove sei?", "Ti sto aspettando!"]),
        (
            "La Dott.ssa Galli riceve il martedì. Telefona prima.",
            ["La Dott.ssa Galli riceve il martedì.", "Telefona prima."],
        ),
        ("Costa 12,50 euro. Non è caro.", ["Costa 12,50 euro.", "Non è caro."]),
    ],
    "pt": [
        ("Claro! Posso ajudar.", ["Claro!", "Posso ajudar."]),
        ("O Dr. Pereira chega às 8h. Aguarde na sala.", ["O Dr. Pereira chega às 8h.", "Aguarde na sala."]),
        ("Você vem hoje? Espero que sim.", ["Você vem hoje?", "Espero que sim."]),
        (
            "A Profa. Lima corrigiu as provas. As notas saem amanhã.",
            ["A Profa. Lima corrigiu as provas.", "As notas saem amanhã."],
        ),
        ("Não. Isso não está certo.", ["Não.", "Isso não está certo."]),
        ("O Sr. Rocha mora em Lisboa. Ele é engenheiro.", ["O Sr. Rocha mora em Lisboa.", "Ele é engenheiro."]),
    ],
    "nl": [
        ("Prima! Ik help je graag.", ["Prima!", "Ik help je graag."]),
        ("Dhr. de Boer is ziek. Hij belt morgen terug.", ["Dhr. de Boer is ziek.", "Hij belt morgen terug."]),
        ("Waar woon je? In Rotterdam, bij het station.", ["Waar woon je?", "In Rotterdam, bij het station."]),
        (
            "Mevr. Peters is de nieuwe directeur. Ze begint in mei.",
            ["Mevr. Peters is de nieuwe directeur.", "Ze begint in mei."],
        ),
        ("Het duurt ong. twee uur. Neem iets te eten mee.", ["Het duurt ong. twee uur.", "Neem iets te eten mee."]),
        ("Nee. Dat klopt niet.", ["Nee.", "Dat klopt niet."]),
    ],
    "ru": [
        ("Конечно! Я помогу.", ["Конечно!", "Я помогу."]),
        ("Доц. Петров ведёт семинар. Приходите вовремя.", ["Доц. Петров ведёт семинар.", "Приходите вовремя."]),
        ("Вы готовы? Тогда начнём.", ["Вы готовы?", "Тогда начнём."]),
        ("Он живёт на ул. Ленина. Дом большой.", ["Он живёт на ул. Ленина.", "Дом большой."]),
        ("Нет. Это неправильно.", ["Нет.", "Это неправильно."]),
        (
            "Книга вышла в 2005 г. Её перевели на десять языков.",
            ["Книга вышла в 2005 г.", "Её перевели на десять языков."],
        ),
    ],
    "zh": [
        ("当然可以！我来帮你。", ["当然可以！", "我来帮你。"]),
        ("会议在下午三点开始。请准时参加。", ["会议在下午三点开始。", "请准时参加。"]),
        ("你确定吗？我再检查一下。", ["你确定吗？", "我再检查一下。"]),
        ("这个版本是1.2.3。请更新到最新版。", ["这个版本是1.2.3。", "请更新到最新版。"]),
        ("谢谢！不客气。", ["谢谢！", "不客气。"]),
        ("他说：“明天见。”", ["他说：“明天见。”"]),
    ],
    "ja": [
        ("わかりました。すぐに対応します。", ["わかりました。", "すぐに対応します。"]),
        ("明日は晴れるでしょう！楽しみです。", ["明日は晴れるでしょう！", "楽しみです。"]),
        ("どこに行きますか？駅です。", ["どこに行きますか？", "駅です。"]),
        ("会議は10時からです。遅れないでください。", ["会議は10時からです。", "遅れないでください。"]),
        ("「ありがとう。」「どういたしまして。」", ["「ありがとう。」", "「どういたしまして。」"]),
        ("いいえ。違います。", ["いいえ。", "違います。"]),
    ],
    "hi": [
        ("ज़रूर! मैं मदद करूँगा।", ["ज़रूर!", "मैं मदद करूँगा।"]),
        ("बैठक दस बजे है। समय पर आना।", ["बैठक दस बजे है।", "समय पर आना।"]),
        ("तुम कैसे हो? मैं ठीक हूँ।", ["तुम कैसे हो?", "मैं ठीक हूँ।"]),
        ("डॉ. गुप्ता अस्पताल में हैं। वे शाम को आएंगे।", ["डॉ. गुप्ता अस्पताल में हैं।", "वे शाम को आएंगे।"]),
        ("नहीं। यह सही नहीं है।", ["नहीं।", "यह सही नहीं है।"]),
        ("कीमत 99.50 रुपये है। बहुत सस्ता!", ["कीमत 99.50 रुपये है।", "बहुत सस्ता!"]),
    ],
    "ar": [
        ("بالتأكيد! سأساعدك.", ["بالتأكيد!", "سأساعدك."]),
        ("الاجتماع في الساعة العاشرة. لا تتأخر.", ["الاجتماع في الساعة العاشرة.", "لا تتأخر."]),
        ("أين تسكن؟ في القاهرة.", ["أين تسكن؟", "في القاهرة."]),
        ("د. سارة طبيبة أطفال. عيادتها قريبة.", ["د. سارة طبيبة أطفال.", "عيادتها قريبة."]),
        ("لا. هذا غير صحيح.", ["لا.", "هذا غير صحيح."]),
        ("الإصدار 2.0 جاهز، جربه الآن. شكرا!", ["الإصدار 2.0 جاهز، جربه الآن.", "شكرا!"]),
    ],
}
