//! Dataset layouts for pretraining: MVTec AD, VisA (its split CSV), BTAD, MPDD, MVTec 3D-AD (RGB
//! only) and Real-IAD (its JSON lists). Each is read into the same shape: per class, a pool of
//! normal images (where the references are drawn from) and the images to train on, each with its
//! mask when it has one. A malformed tree is an error naming the path and what is wrong.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A dataset layout (the command line's `--layout` names are the lower-case variant names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// `<class>/train/good`, `test/<defect>`, `ground_truth/<defect>/<stem>_mask.png`.
    Mvtec,
    /// `split_csv/1cls.csv` (object, split, label, image, mask), paths relative to the root.
    Visa,
    /// `<class>/train/ok`, `test/ok`, `test/ko`, `ground_truth/ko/<stem>.<png|bmp>`.
    Btad,
    /// The MVTec AD layout.
    Mpdd,
    /// `<class>/{train,validation}/good/rgb`, `test/<defect>/{rgb,gt}` (depth is not read).
    Mvtec3d,
    /// `realiad_jsons/<class>.json` lists, images under `realiad_512/<class>/` (or the root).
    Realiad,
}

/// One training image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The image.
    pub image: PathBuf,
    /// Its defect mask (nonzero = anomalous), when it has one.
    pub mask: Option<PathBuf>,
    /// A camera view to draw references from (Real-IAD's C1..C5); `None`: any.
    pub view: Option<u8>,
}

/// One class of a dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Class {
    /// The class name.
    pub name: String,
    /// Normal images references are drawn from, with their view.
    pub normal: Vec<(PathBuf, Option<u8>)>,
    /// Images to train on: normal and anomalous, in a stable order.
    pub items: Vec<Item>,
}

/// Reads `root` in `layout`: every class, sorted by name.
pub fn load(root: &Path, layout: Layout) -> Result<Vec<Class>> {
    if !root.is_dir() {
        bail!("{}: not a folder", root.display());
    }
    let classes = match layout {
        Layout::Mvtec | Layout::Mpdd => class_dirs(root)?.iter().map(|d| mvtec_class(d)).collect::<Result<_>>()?,
        Layout::Btad => class_dirs(root)?.iter().map(|d| btad_class(d)).collect::<Result<_>>()?,
        Layout::Mvtec3d => class_dirs(root)?.iter().map(|d| mvtec3d_class(d)).collect::<Result<_>>()?,
        Layout::Visa => visa(root)?,
        Layout::Realiad => realiad(root)?,
    };
    let classes: Vec<Class> = classes;
    for c in &classes {
        if c.normal.is_empty() {
            bail!("{}: class {} has no normal images to draw references from", root.display(), c.name);
        }
    }
    if classes.is_empty() {
        bail!("{}: no classes found for this layout", root.display());
    }
    Ok(classes)
}

fn is_image(p: &Path) -> bool {
    edge_ad_core::source::is_image_path(p)
}

/// The image files of `dir`, sorted; a missing folder is an error naming it.
fn images(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    let mut out: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image(p)).collect();
    out.sort();
    Ok(out)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    let mut out: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    out.sort();
    Ok(out)
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

fn stem_of(p: &Path) -> String {
    p.file_stem().unwrap_or_default().to_string_lossy().into_owned()
}

/// The class folders of a per-class layout: those holding a `train` folder. A root with none is
/// an error that says what was expected.
fn class_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = subdirs(root)?.into_iter().filter(|d| d.join("train").is_dir()).collect();
    if dirs.is_empty() {
        bail!("{}: no class folder with a train/ folder inside", root.display());
    }
    Ok(dirs)
}

/// The first of `candidates` that exists, or an error naming the image whose mask is missing.
fn mask_for(image: &Path, candidates: &[PathBuf]) -> Result<PathBuf> {
    candidates
        .iter()
        .find(|c| c.is_file())
        .cloned()
        .with_context(|| format!("{}: its mask is missing (looked for {})", image.display(), candidates[0].display()))
}

/// A class of a folder layout named after `dir`, whose `normal` images are both the reference
/// pool and the first training items.
fn with_normal(dir: &Path, normal: Vec<PathBuf>) -> Class {
    let items = normal.iter().map(|p| Item { image: p.clone(), mask: None, view: None }).collect();
    Class { name: name_of(dir), normal: normal.into_iter().map(|p| (p, None)).collect(), items }
}

fn mvtec_class(dir: &Path) -> Result<Class> {
    let good = dir.join("train/good");
    if !good.is_dir() {
        bail!("{}: missing (an MVTec AD class needs train/good)", good.display());
    }
    let mut class = with_normal(dir, images(&good)?);
    let test = dir.join("test");
    if test.is_dir() {
        for defect in subdirs(&test)? {
            let kind = name_of(&defect);
            for image in images(&defect)? {
                let mask = if kind == "good" {
                    None
                } else {
                    let gt = dir.join("ground_truth").join(&kind);
                    Some(mask_for(&image, &[gt.join(format!("{}_mask.png", stem_of(&image)))])?)
                };
                class.items.push(Item { image, mask, view: None });
            }
        }
    }
    Ok(class)
}

fn btad_class(dir: &Path) -> Result<Class> {
    let ok = dir.join("train/ok");
    if !ok.is_dir() {
        bail!("{}: missing (a BTAD class needs train/ok)", ok.display());
    }
    let mut class = with_normal(dir, images(&ok)?);
    for (sub, anomalous) in [("test/ok", false), ("test/ko", true)] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        for image in images(&d)? {
            let mask = if anomalous {
                let gt = dir.join("ground_truth/ko");
                let stem = stem_of(&image);
                Some(mask_for(&image, &[gt.join(format!("{stem}.png")), gt.join(format!("{stem}.bmp"))])?)
            } else {
                None
            };
            class.items.push(Item { image, mask, view: None });
        }
    }
    Ok(class)
}

fn mvtec3d_class(dir: &Path) -> Result<Class> {
    let good = dir.join("train/good/rgb");
    if !good.is_dir() {
        bail!("{}: missing (an MVTec 3D-AD class needs train/good/rgb)", good.display());
    }
    let mut normal = images(&good)?;
    let validation = dir.join("validation/good/rgb");
    if validation.is_dir() {
        normal.extend(images(&validation)?);
    }
    let mut class = with_normal(dir, normal);
    let test = dir.join("test");
    if test.is_dir() {
        for defect in subdirs(&test)? {
            let rgb = defect.join("rgb");
            if !rgb.is_dir() {
                bail!("{}: missing (an MVTec 3D-AD test folder needs rgb/)", rgb.display());
            }
            let good = name_of(&defect) == "good";
            for image in images(&rgb)? {
                let mask =
                    if good { None } else { Some(mask_for(&image, &[defect.join("gt").join(name_of(&image))])?) };
                class.items.push(Item { image, mask, view: None });
            }
        }
    }
    Ok(class)
}

/// VisA: `split_csv/1cls.csv` with the header `object,split,label,image,mask`; `label` is
/// `normal` or `anomaly`; paths are relative to the root. Normal images of the train split are
/// the reference pool.
fn visa(root: &Path) -> Result<Vec<Class>> {
    let csv_path = root.join("split_csv/1cls.csv");
    let mut reader = csv::Reader::from_path(&csv_path)
        .with_context(|| format!("{}: cannot read the split CSV", csv_path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: no header", csv_path.display()))?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.trim() == name).with_context(|| {
            format!("{}: the header has no `{name}` column (want object,split,label,image,mask)", csv_path.display())
        })
    };
    let (object, split, label, image, mask) =
        (col("object")?, col("split")?, col("label")?, col("image")?, col("mask")?);
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}: line {line}", csv_path.display()))?;
        let field = |c: usize| row.get(c).unwrap_or("").trim();
        let class = classes
            .entry(field(object).to_string())
            .or_insert_with(|| Class { name: field(object).to_string(), ..Class::default() });
        let path = root.join(field(image));
        if !path.is_file() {
            bail!("{}: line {line}: image {} does not exist", csv_path.display(), path.display());
        }
        let anomalous = match field(label) {
            "normal" => false,
            "anomaly" => true,
            other => bail!("{}: line {line}: label {other:?} is neither normal nor anomaly", csv_path.display()),
        };
        let mask_path = if anomalous {
            let m = root.join(field(mask));
            if field(mask).is_empty() || !m.is_file() {
                bail!("{}: line {line}: mask {:?} of an anomaly does not exist", csv_path.display(), field(mask));
            }
            Some(m)
        } else {
            None
        };
        if !anomalous && field(split) == "train" {
            class.normal.push((path.clone(), None));
        }
        class.items.push(Item { image: path, mask: mask_path, view: None });
    }
    Ok(classes.into_values().collect())
}

/// Real-IAD: one JSON list per class in `realiad_jsons/` (`{"meta": {"prefix", "normal_class"},
/// "train": [...], "test": [...]}`, each entry with `image_path`, `mask_path` (or null) and
/// `anomaly_class`), images under `realiad_512/<prefix>/` (or `<root>/<prefix>/`). Both lists are
/// read; the OK images are the reference pool, by camera view (`_C1_`..`_C5_` in the file name).
fn realiad(root: &Path) -> Result<Vec<Class>> {
    #[derive(serde::Deserialize)]
    struct Meta {
        prefix: Option<String>,
        normal_class: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        category: Option<String>,
        anomaly_class: String,
        image_path: String,
        mask_path: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct List {
        meta: Option<Meta>,
        #[serde(default)]
        train: Vec<Entry>,
        #[serde(default)]
        test: Vec<Entry>,
    }
    let lists = root.join("realiad_jsons");
    let images_root = if root.join("realiad_512").is_dir() { root.join("realiad_512") } else { root.to_path_buf() };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&lists)
        .with_context(|| format!("{}: cannot read (Real-IAD needs its JSON lists here)", lists.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut classes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("{}: cannot read", file.display()))?;
        let list: List =
            serde_json::from_str(&text).with_context(|| format!("{}: not a Real-IAD list", file.display()))?;
        let name = stem_of(&file);
        let prefix = list.meta.as_ref().and_then(|m| m.prefix.clone()).unwrap_or_else(|| name.clone());
        let normal_class = list.meta.as_ref().and_then(|m| m.normal_class.clone()).unwrap_or_else(|| "OK".into());
        let base = images_root.join(&prefix);
        let mut class = Class { name: name.clone(), ..Class::default() };
        for e in list.train.iter().chain(&list.test) {
            let image = base.join(&e.image_path);
            if !image.is_file() {
                bail!("{}: image {} does not exist", file.display(), image.display());
            }
            if let Some(c) = &e.category {
                if c != &name && c != &prefix {
                    bail!("{}: entry {} is of category {c}", file.display(), e.image_path);
                }
            }
            let view = camera_view(&e.image_path);
            let mask = match &e.mask_path {
                Some(m) => {
                    let m = base.join(m);
                    if !m.is_file() {
                        bail!("{}: mask {} does not exist", file.display(), m.display());
                    }
                    Some(m)
                }
                None => None,
            };
            if e.anomaly_class == normal_class {
                class.normal.push((image.clone(), view));
            }
            class.items.push(Item { image, mask, view });
        }
        classes.push(class);
    }
    Ok(classes)
}

/// The camera view in a Real-IAD file name (`..._C3_...` → 3).
pub fn camera_view(path: &str) -> Option<u8> {
    let name = path.rsplit('/').next()?;
    name.split('_').find_map(|part| {
        let digits = part.strip_prefix('C')?;
        (digits.len() == 1).then(|| digits.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(40, 40, image::Rgb([1, 2, 3])).save(path).unwrap();
    }

    fn names(c: &Class) -> (Vec<String>, Vec<(String, Option<String>)>) {
        let n = c.normal.iter().map(|(p, _)| name_of(p)).collect();
        let i = c.items.iter().map(|i| (name_of(&i.image), i.mask.as_deref().map(name_of))).collect();
        (n, i)
    }

    #[test]
    fn mvtec_and_mpdd_trees_read_with_masks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("bottle/train/good/000.png"));
        touch(&r.join("bottle/train/good/001.png"));
        touch(&r.join("bottle/test/good/000.png"));
        touch(&r.join("bottle/test/broken/000.png"));
        touch(&r.join("bottle/ground_truth/broken/000_mask.png"));
        std::fs::write(r.join("license.txt"), "not a class").unwrap();
        for layout in [Layout::Mvtec, Layout::Mpdd] {
            let classes = load(r, layout).unwrap();
            assert_eq!(classes.len(), 1);
            let (normal, items) = names(&classes[0]);
            assert_eq!(normal, ["000.png", "001.png"]);
            assert_eq!(items.len(), 4);
            assert_eq!(items[2], ("000.png".into(), Some("000_mask.png".into())), "test/broken, by folder order");
            assert_eq!(items[3].1, None, "test/good has no mask");
        }
        std::fs::remove_file(r.join("bottle/ground_truth/broken/000_mask.png")).unwrap();
        let e = format!("{:#}", load(r, Layout::Mvtec).unwrap_err());
        assert!(e.contains("test/broken/000.png") && e.contains("mask is missing"), "{e}");
        let e = format!("{:#}", load(&r.join("bottle/train"), Layout::Mvtec).unwrap_err());
        assert!(e.contains("no class folder"), "{e}");
    }

    #[test]
    fn btad_reads_bmp_images_and_png_or_bmp_masks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("01/train/ok/0000.bmp"));
        touch(&r.join("01/test/ok/0001.bmp"));
        touch(&r.join("01/test/ko/0002.bmp"));
        touch(&r.join("01/ground_truth/ko/0002.png"));
        touch(&r.join("03/train/ok/0000.bmp"));
        touch(&r.join("03/test/ko/0005.bmp"));
        touch(&r.join("03/ground_truth/ko/0005.bmp"));
        let classes = load(r, Layout::Btad).unwrap();
        assert_eq!(classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["01", "03"]);
        assert_eq!(names(&classes[0]).1[2], ("0002.bmp".into(), Some("0002.png".into())));
        assert_eq!(names(&classes[1]).1[1], ("0005.bmp".into(), Some("0005.bmp".into())));
    }

    #[test]
    fn mvtec3d_reads_rgb_and_gt_only() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("bagel/train/good/rgb/000.png"));
        touch(&r.join("bagel/validation/good/rgb/001.png"));
        std::fs::create_dir_all(r.join("bagel/train/good/xyz")).unwrap();
        std::fs::write(r.join("bagel/train/good/xyz/000.tiff"), b"depth").unwrap();
        touch(&r.join("bagel/test/crack/rgb/000.png"));
        touch(&r.join("bagel/test/crack/gt/000.png"));
        let c = &load(r, Layout::Mvtec3d).unwrap()[0];
        assert_eq!(c.normal.len(), 2, "train and validation good");
        assert_eq!(c.items.len(), 3);
        assert!(c.items.iter().all(|i| i.image.to_string_lossy().contains("/rgb/")));
        std::fs::remove_dir_all(r.join("bagel/test/crack/rgb")).unwrap();
        let e = format!("{:#}", load(r, Layout::Mvtec3d).unwrap_err());
        assert!(e.contains("crack/rgb") && e.contains("missing"), "{e}");
    }

    #[test]
    fn visa_follows_its_split_csv() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        touch(&r.join("candle/Data/Images/Normal/0000.JPG"));
        touch(&r.join("candle/Data/Images/Normal/0001.JPG"));
        touch(&r.join("candle/Data/Images/Anomaly/000.JPG"));
        touch(&r.join("candle/Data/Masks/Anomaly/000.png"));
        std::fs::create_dir_all(r.join("split_csv")).unwrap();
        let csv = "object,split,label,image,mask\n\
            candle,train,normal,candle/Data/Images/Normal/0000.JPG,\n\
            candle,test,normal,candle/Data/Images/Normal/0001.JPG,\n\
            candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png\n";
        std::fs::write(r.join("split_csv/1cls.csv"), csv).unwrap();
        let c = &load(r, Layout::Visa).unwrap()[0];
        assert_eq!(c.name, "candle");
        assert_eq!(names(c).0, ["0000.JPG"], "references: normal train images only");
        assert_eq!(names(c).1[2], ("000.JPG".into(), Some("000.png".into())));
        std::fs::write(r.join("split_csv/1cls.csv"), csv.replace("anomaly,candle", "broken,candle")).unwrap();
        let e = format!("{:#}", load(r, Layout::Visa).unwrap_err());
        assert!(e.contains("1cls.csv") && e.contains("line 4") && e.contains("broken"), "{e}");
        std::fs::write(r.join("split_csv/1cls.csv"), "object,split,image\n").unwrap();
        let e = format!("{:#}", load(r, Layout::Visa).unwrap_err());
        assert!(e.contains("no `label` column"), "{e}");
    }

    #[test]
    fn realiad_reads_its_json_lists_with_camera_views() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let base = r.join("realiad_512/audiojack");
        touch(&base.join("OK/S0001/audiojack_0001_OK_C1_20230922093011.jpg"));
        touch(&base.join("OK/S0001/audiojack_0001_OK_C2_20230922093011.jpg"));
        touch(&base.join("NG/AK/S0023/audiojack_0023_NG_AK_C1_20230922.jpg"));
        touch(&base.join("NG/AK/S0023/audiojack_0023_NG_AK_C1_20230922.png"));
        std::fs::create_dir_all(r.join("realiad_jsons")).unwrap();
        let list = serde_json::json!({
            "meta": {"prefix": "audiojack", "normal_class": "OK"},
            "train": [
                {"category": "audiojack", "anomaly_class": "OK", "image_path": "OK/S0001/audiojack_0001_OK_C1_20230922093011.jpg", "mask_path": null},
                {"category": "audiojack", "anomaly_class": "OK", "image_path": "OK/S0001/audiojack_0001_OK_C2_20230922093011.jpg", "mask_path": null}
            ],
            "test": [
                {"category": "audiojack", "anomaly_class": "AK", "image_path": "NG/AK/S0023/audiojack_0023_NG_AK_C1_20230922.jpg", "mask_path": "NG/AK/S0023/audiojack_0023_NG_AK_C1_20230922.png"}
            ]
        });
        std::fs::write(r.join("realiad_jsons/audiojack.json"), list.to_string()).unwrap();
        let c = &load(r, Layout::Realiad).unwrap()[0];
        assert_eq!(c.normal.iter().map(|n| n.1).collect::<Vec<_>>(), [Some(1), Some(2)]);
        assert_eq!(c.items[2].view, Some(1));
        assert!(c.items[2].mask.is_some());
        std::fs::write(r.join("realiad_jsons/audiojack.json"), "{\"train\": 3}").unwrap();
        let e = format!("{:#}", load(r, Layout::Realiad).unwrap_err());
        assert!(e.contains("audiojack.json") && e.contains("not a Real-IAD list"), "{e}");
        assert_eq!(camera_view("a/b/x_0001_OK_C5_2023.jpg"), Some(5));
        assert_eq!(camera_view("C7_dir/x_0001.jpg"), None);
    }
}
