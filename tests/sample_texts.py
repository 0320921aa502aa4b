"""Texts that stress tokenization and highlighting: long words, odd Unicode, odd whitespace."""

LONG_TEXT = " ".join(
    ["Cashmere unbelievably antidisestablishmentarianism weatherproofing, 1,200 kilograms of wool."] * 6
)

ODD_TEXTS = [
    "  Café crème brûlée 😀 naïve 東京タワー\tnew\nline  ",
    "\n\tLeading tabs and trailing newlines\n\n",
    "Emoji-only words 🙂🙂 and 👩‍👩‍👧 family, ok?",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ligature ﬁsh, İstanbul ß",
    "中文没有空格的句子也应该可以高亮显示",
    "Zero\u200bwidth and\u00a0no-break spaces",
    "A cafe\u0301 with combining accents: e\u0301te\u0301 and x\u0301\u0302y",
    "Tabs\tbetween\twords and   many    spaces",
]
