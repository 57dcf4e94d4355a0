"""Write examples/cards/captain_bess.png: the JSON card embedded in a PNG, as SillyTavern exports it
(base64 JSON in a `chara` text chunk).

    python examples/make_card_png.py
"""

import base64
import json
from pathlib import Path

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

HERE = Path(__file__).resolve().parent / "cards"


def main() -> None:
    card = json.loads((HERE / "captain_bess.json").read_text(encoding="utf-8"))
    image = Image.new("RGB", (256, 256), (22, 60, 96))
    draw = ImageDraw.Draw(image)
    draw.polygon([(128, 40), (128, 170), (60, 170)], fill=(240, 235, 220))  # a sail
    draw.rectangle([50, 180, 206, 205], fill=(110, 70, 40))  # the hull
    draw.text((70, 220), card["data"]["name"], fill=(255, 255, 255))
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card, ensure_ascii=False).encode("utf-8")).decode("ascii"))
    image.save(HERE / "captain_bess.png", pnginfo=info)
    print(f"wrote {HERE / 'captain_bess.png'}")


if __name__ == "__main__":
    main()
