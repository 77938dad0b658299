#!/usr/bin/env python3
"""Real-photograph datasets of textured parts with painted defects, in the MVTec AD layout.

Two disjoint sets come from photographs and scanned textures that Debian packages ship (sources and
licences in NOTICE.md; fetch them with fetch.sh):

- `validation`: ten materials the box is judged on (rock, bark, crackle, reptile skin, wood end
  grain, sand, wood, meadow, cork, rough canvas). Shots (`train/good`) are cut from the left half
  of each photograph and test parts from the right half, so no test pixel was ever seen in a shot.
- `pretrain`: other photographs and materials (papers, grains, relief, melt, vegetal, chainmail,
  wall, leaf veins and more), for pretraining the projector. No image of it shares a photograph
  or a material with `validation`.

Each part is a 224-pixel square crop at a random place of its half, resized to 256 (bicubic),
with a light gain jitter and sensor noise. Defective parts get one of six painted defects, at
contrasts an inspector sees but not glaring, with exact masks: scratch, crack, dent, stain,
foreign object, smoothed (a blurred patch). The same seed gives the same files.

    python3 tests/photoset/make_photoset.py --sources DIR --out OUT [--set validation|pretrain]
        [--categories a,b] [--train-good 8] [--test-good 20] [--per-defect 5] [--seed 2026]
"""

import argparse
import hashlib
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

KRITA = "krita-data/usr/share/krita/patterns/"
MATE = "mate-backgrounds/usr/share/backgrounds/mate/nature/"
MYPAINT = "mypaint-data-extras/usr/share/mypaint/backgrounds/"

# name: (path under the sources folder, scale applied before cropping, sha256 of the file).
VALIDATION = {
    "rock": (KRITA + "14_texture-rock.png", 1.0, "113b7bf596399f552d88976cffe393716147fd9d38b3bb14711bdb1407f0e7bb"),
    "bark": (KRITA + "18_texture-bark.png", 1.0, "b2c6d7b2e0b3740adf00defeebf1f3888dbc365125137246cc14c6f81f0316f3"),
    "crackle": (KRITA + "19_texture-crackle.png", 1.0, "27df36d9dbac67767c84fb4a9a613bf6d3eac06fc3b46303a3c6f657ec2fd202"),
    "reptile": (KRITA + "22_texture-reptile.png", 1.0, "0f1b1fa6d93671cc5691ea9fcd0cbfc4914a6a2130e43f1b54db89db74cdfa20"),
    "endgrain": (KRITA + "16_texture-woody.png", 1.0, "bcb02aa96bd0bac6456cfd0338fdc3915801075b91e94c83c038bf0646e68ff9"),
    "sand": (KRITA + "Sand_fine.png", 1.0, "a775f82b1ef2490a11c21391d05ab7fc3a9d4d7dc21426d9cd4a3151f5e033ac"),
    "canvas": (KRITA + "02_rough-canvas.png", 1.0, "3953f1faf3b620713fa7cbf15c3b989de826f54890e9fdeebb602dd402e087e3"),
    "cork": (MYPAINT + "ramon/HR_Cork.png", 1.0, "abb1c9d5ae5ef55b5f0a3927e50c671e334c7ed9edd08d1f323b1de79566573e"),
    "wood": (MATE + "Wood.jpg", 0.4, "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    "meadow": (MATE + "GreenMeadow.jpg", 0.6, "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
}
PRETRAIN = {
    "paper": (KRITA + "03_default-paper.png", 1.0, "55ada35d5abeab4cff06642e0bb7b8d3d6cc9f210b17d91fe8c2edf43d57c96a"),
    "cgrain": (KRITA + "04_paper-C-grain.png", 1.0, "f76947e372e7cf5cf1b4738d2e74c7ab7394c581359481eca45a6e16b0c10c95"),
    "torchon": (KRITA + "05_paper-torchon.png", 1.0, "645f29d2b423ab610989e584d55f61e4f4888363b7850c75f30d66c4e27eadbf"),
    "hardgrain": (KRITA + "06_hard-grain.png", 1.0, "535a2c1ba632d617fc7f6ede61d8790436c77f64f06fe6ab944df333b81aaf20"),
    "relief": (KRITA + "08_bump-relief.png", 1.0, "70b0ae52c6b1a47c7132fba75f5a9432120a86a1d3d7c12288733af771145464"),
    "melt": (KRITA + "17_texture-melt.png", 1.0, "0f90b6e24685914c1f69334b06b81175a5ff84f0d05371904101ec52a8a1bd98"),
    "vegetal": (KRITA + "20_texture-vegetal.png", 1.0, "798ab098f11ef219d9d967ad079aeab5d297472e5b2dbf8877990b340c272f25"),
    "chainmail": (KRITA + "21_texture-chainmail.png", 1.0, "87377c788b260f7fdc8e040068326c0bc6d330d621707fd394980c7635c5801c"),
    "wall": (KRITA + "Rough_Wall_With_Impasto.png", 1.0, "0ce1010caafab0314ed91aa5ee958bce327a72c4a5f191f92101e034c8bde094"),
    "roughpaper": (KRITA + "Rough_Paper.png", 1.0, "0d371b933f1d92111259094769414c3b92b8ebb1b3d753bd150e20142a1fbd84"),
    "furry": (KRITA + "11_drawed_furry.png", 1.0, "19ff29204d348c5036893a762c02145ed112815dd296af4300bff1e857341a45"),
    "pastel": (MYPAINT + "ramon/HR_PastelPaper 01.png", 1.0, "169b0bd33744086d03d50610a55e669941c14fadfe8b3d21a1afe6717e9b7260"),
    "deco": (MYPAINT + "ramon/HR_DecoPaper.png", 1.0, "da86b40e4e65918ebae75e79e63a8a4cede4f3c2b3c0240a643d62517f2f2abd"),
    "watercolor": (MYPAINT + "ramon/HR_WaterColor.png", 1.0, "b438cbdede1361b322ec623e77e3e84f073a8abb637e322c176fbd9996025855"),
    "mamurk": (MYPAINT + "mrmamurk/mamurk_a_1.png", 1.0, "01dc26395fd4d1e5a9abd0e793f56c016ad0826c0f2942fe5b4277ff6afc15f9"),
    "leaf": (MATE + "Blinds.jpg", 0.5, "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
}
# Foreign particles on validation parts are cut from a photograph in neither set.
PARTICLES = (MATE + "Dune.jpg", 0.5, "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91")
DEFECTS = ["scratch", "crack", "dent", "stain", "foreign", "smoothed"]
SIDE = 256
CROP = 224
SS = 4  # supersampling of painted shapes, for exact anti-aliased masks


def load_source(root, rel, scale, sha256, any_version=False):
    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        sys.exit(f"{path}: source image missing; run tests/photoset/fetch.sh {root} first")
    try:
        im = Image.open(path).convert("RGB")
    except Exception as e:  # noqa: BLE001 - any decoder error is a clear message
        sys.exit(f"{path}: cannot read the image: {e}")
    if scale != 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != sha256 and not any_version:
        sys.exit(
            f"{path}: sha256 {digest} is not the {sha256} the published figures were made from "
            "(another package version?); --any-version uses it anyway"
        )
    return np.asarray(im, dtype=np.float32) / 255.0, digest


def half_bounds(src, half, crop):
    h, w, _ = src.shape
    gap = 8  # a band between the halves that no part touches
    x0, x1 = (0, w // 2 - gap) if half == 0 else (w // 2 + gap, w)
    if x1 - x0 < crop or h < crop:
        sys.exit(f"source of {w}×{h} is too small for {crop}-pixel parts from each half")
    return x0, x1, h


def shot_places(src, n, crop, rng):
    """Where the n shots are cut in the left half: in n disjoint cells of a grid when the half
    holds that many crop² cells (so no two shots share a pixel, as two real parts never do),
    else at random places (they then overlap, which makes their leave-one-out scores too low)."""
    x0, x1, h = half_bounds(src, 0, crop)
    nx, ny = (x1 - x0) // crop, h // crop
    if nx * ny < n:
        return [None] * n
    cells = rng.permutation(nx * ny)[:n]
    cw, ch = (x1 - x0) // nx, h // ny
    return [
        (x0 + (c % nx) * cw + int(rng.integers(0, cw - crop + 1)), (c // nx) * ch + int(rng.integers(0, ch - crop + 1)))
        for c in cells
    ]


def crop_part(src, half, rng, crop, place=None):
    """A crop² square of the left (0) or right (1) half, at `place` or a random place, resized to SIDE²."""
    x0, x1, h = half_bounds(src, half, crop)
    if place is None:
        x = int(rng.integers(x0, x1 - crop + 1))
        y = int(rng.integers(0, h - crop + 1))
    else:
        x, y = place
    part = Image.fromarray((src[y : y + crop, x : x + crop] * 255).round().astype(np.uint8))
    part = np.asarray(part.resize((SIDE, SIDE), Image.BICUBIC), dtype=np.float32) / 255.0
    return part


def camera(img, rng):
    """Light gain jitter and sensor noise, as consecutive frames of a line camera differ."""
    img = img * rng.uniform(0.97, 1.03) + rng.normal(0.0, 1.5 / 255.0, img.shape)
    return np.clip(img, 0.0, 1.0)


def raster(draw_fn):
    """Alpha in [0, 1] at SIDE² of a shape drawn by `draw_fn(ImageDraw, ss)` at SS× resolution."""
    big = Image.new("L", (SIDE * SS, SIDE * SS), 0)
    draw_fn(ImageDraw.Draw(big), SS)
    a = np.asarray(big, dtype=np.float32).reshape(SIDE, SS, SIDE, SS).mean(axis=(1, 3)) / 255.0
    return a


def centre(rng, margin):
    return rng.uniform(margin, SIDE - margin), rng.uniform(margin, SIDE - margin)


def blob(rng, cy, cx, radius):
    """Alpha of an irregular blob: a polygon whose radius wanders with a few harmonics."""
    n = 48
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(-0.18, 0.18) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.6, 1.0)
    rot = rng.uniform(0, np.pi)
    xs = radius * r * np.cos(t)
    ys = radius * aspect * r * np.sin(t)
    px = cx + xs * np.cos(rot) - ys * np.sin(rot)
    py = cy + xs * np.sin(rot) + ys * np.cos(rot)
    pts = [(float(x * SS), float(y * SS)) for x, y in zip(px, py)]
    return raster(lambda d, s: d.polygon(pts, fill=255))


def curve(rng, length, wiggle):
    """Points of a smooth random curve of about `length` pixels."""
    cy, cx = centre(rng, 30)
    ang = rng.uniform(0, 2 * np.pi)
    n = 24
    steps = np.cumsum(rng.normal(0, wiggle, n))
    pts = []
    y, x = cy - math.sin(ang) * length / 2, cx - math.cos(ang) * length / 2
    for i in range(n + 1):
        pts.append((x, y))
        a = ang + (steps[min(i, n - 1)] if i else 0)
        x += math.cos(a) * length / n
        y += math.sin(a) * length / n
    return pts


def stroke(pts, width):
    scaled = [(x * SS, y * SS) for x, y in pts]
    return raster(lambda d, s: d.line(scaled, fill=255, width=max(1, round(width * s)), joint="curve"))


def luminance(img):
    return img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def paint_scratch(img, rng, _foreign):
    a = stroke(curve(rng, rng.uniform(50, 130), 0.05), rng.uniform(1.5, 3.0))
    # A scratch catches light (brighter) or shows a darker groove, by a visible step.
    delta = rng.uniform(0.14, 0.26) * (1 if rng.random() < 0.6 else -1)
    out = img + a[..., None] * delta
    return out, a >= 0.5


def paint_crack(img, rng, _foreign):
    main = curve(rng, rng.uniform(50, 120), 0.35)
    a = stroke(main, rng.uniform(1.0, 2.2))
    for _ in range(int(rng.integers(0, 3))):
        sx, sy = main[int(rng.integers(4, len(main) - 4))]
        ang = rng.uniform(0, 2 * np.pi)
        branch = [(sx, sy)]
        for _ in range(8):
            ang += rng.normal(0, 0.4)
            sx, sy = sx + math.cos(ang) * 3.5, sy + math.sin(ang) * 3.5
            branch.append((sx, sy))
        a = np.maximum(a, stroke(branch, rng.uniform(0.8, 1.5)))
    out = img * (1 - a[..., None] * rng.uniform(0.4, 0.65))
    return out, a >= 0.5


def paint_dent(img, rng, _foreign):
    cy, cx = centre(rng, 40)
    ry, rx = rng.uniform(10, 24), rng.uniform(10, 24)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    d2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    height = np.where(d2 < 1, np.cos(np.sqrt(np.minimum(d2, 1)) * np.pi / 2) ** 2, 0.0)
    gy, gx = np.gradient(height)
    light = rng.uniform(0, 2 * np.pi)
    shade = gx * math.cos(light) + gy * math.sin(light)
    shade = shade / (np.abs(shade).max() + 1e-6) * rng.uniform(0.16, 0.28)
    # The surface is pushed in: the texture inside is pulled towards the centre, then shaded.
    pull = rng.uniform(2.0, 4.0)
    coords = np.array([yy + gy * pull * ry, xx + gx * pull * rx])
    warped = np.stack([ndimage.map_coordinates(img[..., c], coords, order=1, mode="reflect") for c in range(3)], -1)
    out = warped * (1 + shade[..., None])
    return out, d2 < 1  # the whole footprint: the warp and the shading reach its rim


def paint_stain(img, rng, _foreign):
    cy, cx = centre(rng, 35)
    a = ndimage.gaussian_filter(blob(rng, cy, cx, rng.uniform(10, 26)), 1.2)
    tint = np.array([rng.uniform(0.45, 0.75), rng.uniform(0.35, 0.6), rng.uniform(0.2, 0.45)], dtype=np.float32)
    strength = rng.uniform(0.45, 0.7)
    out = img * (1 - a[..., None] * strength * (1 - tint))
    return out, a >= 0.5


def paint_foreign(img, rng, foreign):
    """A particle of another material (a patch of another photograph) lying on the part."""
    cy, cx = centre(rng, 30)
    a = blob(rng, cy, cx, rng.uniform(6, 14))
    fy = int(rng.integers(0, foreign.shape[0] - SIDE + 1))
    fx = int(rng.integers(0, foreign.shape[1] - SIDE + 1))
    patch = foreign[fy : fy + SIDE, fx : fx + SIDE]
    patch = np.clip(patch * rng.uniform(0.6, 1.3) + rng.uniform(-0.1, 0.1), 0, 1)
    shadow = ndimage.shift(ndimage.gaussian_filter(a, 2.0), (2, 2), order=1) * 0.25
    out = img * (1 - shadow[..., None])
    out = out * (1 - a[..., None]) + patch * a[..., None]
    return out, a >= 0.5


def paint_smoothed(img, rng, _foreign):
    cy, cx = centre(rng, 40)
    a = ndimage.gaussian_filter(blob(rng, cy, cx, rng.uniform(14, 30)), 1.5)
    sigma = rng.uniform(2.5, 4.0)
    blurred = np.stack([ndimage.gaussian_filter(img[..., c], sigma) for c in range(3)], -1)
    out = img * (1 - a[..., None]) + blurred * a[..., None]
    return out, a >= 0.5


PAINTERS = {
    "scratch": paint_scratch,
    "crack": paint_crack,
    "dent": paint_dent,
    "stain": paint_stain,
    "foreign": paint_foreign,
    "smoothed": paint_smoothed,
}


def save(img, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(path)


def make_category(name, src, foreign, out, args, seed):
    rng = np.random.default_rng(seed)
    root = os.path.join(out, name)
    places = shot_places(src, args.train_good, args.crop, rng) if args.disjoint_shots else [None] * args.train_good
    for i, place in enumerate(places):
        save(camera(crop_part(src, 0, rng, args.crop, place), rng), os.path.join(root, "train", "good", f"{i:03}.png"))
    for i in range(args.test_good):
        save(camera(crop_part(src, 1, rng, args.crop), rng), os.path.join(root, "test", "good", f"{i:03}.png"))
    for kind in DEFECTS:
        for i in range(args.per_defect):
            part = crop_part(src, 1, rng, args.crop)
            img, mask = PAINTERS[kind](part, rng, foreign)
            for _ in range(10):  # a defect too thin to cover 16 pixels: paint again elsewhere
                if mask.sum() >= 16:
                    break
                img, mask = PAINTERS[kind](part, rng, foreign)
            else:
                sys.exit(f"{name}/{kind}/{i:03}: no defect of 16 pixels or more in 10 tries")
            save(camera(np.clip(img, 0, 1), rng), os.path.join(root, "test", kind, f"{i:03}.png"))
            m = Image.fromarray((mask * 255).astype(np.uint8))
            mpath = os.path.join(root, "ground_truth", kind, f"{i:03}_mask.png")
            os.makedirs(os.path.dirname(mpath), exist_ok=True)
            m.save(mpath)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sources", required=True, help="folder fetch.sh unpacked the packages into")
    p.add_argument("--out", required=True)
    p.add_argument("--set", choices=["validation", "pretrain"], default="validation")
    p.add_argument("--categories", default="", help="comma-separated subset (default: all of the set)")
    p.add_argument("--train-good", type=int, default=8)
    p.add_argument("--test-good", type=int, default=20)
    p.add_argument("--per-defect", type=int, default=5)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--any-version", action="store_true", help="accept source files whose sha256 differs")
    p.add_argument("--crop", type=int, default=CROP, help="side of the square cut from the photograph")
    p.add_argument(
        "--disjoint-shots",
        action="store_true",
        help="cut the shots in disjoint grid cells (needs a half that holds train-good crop² cells)",
    )
    args = p.parse_args()
    table = VALIDATION if args.set == "validation" else PRETRAIN
    names = [c for c in args.categories.split(",") if c] or list(table)
    for c in names:
        if c not in table:
            sys.exit(f"unknown category {c!r} for the {args.set} set; known: {', '.join(table)}")
    # Foreign particles are another material: for the validation set a photograph in neither set,
    # for the pretraining set one of its own photographs other than the part's, so no validation
    # pixel reaches pretraining and no pretraining particle reaches validation.
    particles = {}
    for c in names:
        if args.set == "validation":
            donor = ("dune", PARTICLES)
        else:
            donor = ("melt", PRETRAIN["melt"]) if c == "leaf" else ("leaf", PRETRAIN["leaf"])
        if donor[0] not in particles:
            particles[donor[0]] = load_source(args.sources, *donor[1], args.any_version)[0]
        rel, scale, sha256 = table[c]
        src, digest = load_source(args.sources, rel, scale, sha256, args.any_version)
        seed = args.seed * 1000 + list(table).index(c)
        make_category(c, src, particles[donor[0]], args.out, args, seed)
        print(f"{c}: {rel} (sha256 {digest[:16]}…)", flush=True)


if __name__ == "__main__":
    main()
