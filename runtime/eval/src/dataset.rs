//! MVTec AD layout: `<root>/<category>/{train/good, test/good, test/<defect>,
//! ground_truth/<defect>/<stem>_mask.png}`. A root that itself holds `train/good` is one category.

use std::path::{Path, PathBuf};

use edge_ad_core::source::image_files;
use edge_ad_core::{Error, Result};

/// One test image and, for a defect, its mask.
#[derive(Clone, Debug, PartialEq)]
pub struct TestItem {
    /// The image.
    pub path: PathBuf,
    /// The defect folder's name; `None` for `test/good`.
    pub defect: Option<String>,
    /// The ground-truth mask, for defects.
    pub mask: Option<PathBuf>,
}

/// One category of an MVTec-layout dataset.
#[derive(Clone, Debug)]
pub struct Category {
    /// Category name (folder name).
    pub name: String,
    /// `train/good` images, sorted by file name.
    pub train_good: Vec<PathBuf>,
    /// Every test image, good first, then defects by folder name, each sorted.
    pub test: Vec<TestItem>,
}

fn is_category(dir: &Path) -> bool {
    dir.join("train").join("good").is_dir()
}

/// The categories under `root`, sorted (the root's own name when it is a category).
pub fn category_names(root: &Path) -> Result<Vec<String>> {
    if !root.is_dir() {
        return Err(Error::bad_file(root, "dataset root is not a folder"));
    }
    if is_category(root) {
        return Ok(vec![root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into())]);
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let path = entry.map_err(|e| Error::io(root, e))?.path();
        if is_category(&path) {
            names.push(path.file_name().unwrap_or_default().to_string_lossy().into_owned());
        }
    }
    if names.is_empty() {
        return Err(Error::bad_file(
            root,
            "holds no category (no <category>/train/good folder): not an MVTec AD layout",
        ));
    }
    names.sort();
    Ok(names)
}

/// Reads category `name` of `root`. Every defect image must have its mask.
pub fn load_category(root: &Path, name: &str) -> Result<Category> {
    let dir = if is_category(root) && root.file_name().map(|n| n.to_string_lossy() == name).unwrap_or(name == ".") {
        root.to_path_buf()
    } else {
        root.join(name)
    };
    if !is_category(&dir) {
        return Err(Error::bad_file(&dir, format!("category {name:?} not found (no train/good folder)")));
    }
    let train_good = image_files(&dir.join("train").join("good"))?;
    let test_dir = dir.join("test");
    if !test_dir.is_dir() {
        return Err(Error::bad_file(&test_dir, "missing: a category needs a test folder"));
    }
    let mut defect_dirs = Vec::new();
    for entry in std::fs::read_dir(&test_dir).map_err(|e| Error::io(&test_dir, e))? {
        let path = entry.map_err(|e| Error::io(&test_dir, e))?.path();
        if path.is_dir() {
            defect_dirs.push(path);
        }
    }
    defect_dirs.sort();
    let mut test = Vec::new();
    let good = test_dir.join("good");
    if good.is_dir() {
        test.extend(image_files(&good)?.into_iter().map(|path| TestItem { path, defect: None, mask: None }));
    }
    for d in defect_dirs.iter().filter(|d| **d != good) {
        let defect = d.file_name().unwrap_or_default().to_string_lossy().into_owned();
        for path in image_files(d)? {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            let mask = dir.join("ground_truth").join(&defect).join(format!("{stem}_mask.png"));
            if !mask.is_file() {
                return Err(Error::bad_file(&path, format!("defect image has no mask (expected {})", mask.display())));
            }
            test.push(TestItem { path, defect: Some(defect.clone()), mask: Some(mask) });
        }
    }
    if test.is_empty() {
        return Err(Error::bad_file(&test_dir, "holds no test image"));
    }
    Ok(Category { name: name.to_string(), train_good, test })
}

/// A ground-truth mask as grey levels (nonzero marks the defect); an unreadable file is an error
/// naming it.
pub fn read_mask(path: &Path) -> Result<image::GrayImage> {
    Ok(image::open(path).map_err(|e| Error::bad_file(path, format!("not a readable mask: {e}")))?.into_luma8())
}
