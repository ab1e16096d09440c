"""PAD-UFES-20 and covid-chestxray sources on tiny fixtures in each data set's own layout."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fairmed import DataError
from fairmed.cli import cli
from fairmed.data.sources import load_source

PAD_COLUMNS = [
    "patient_id",
    "lesion_id",
    "smoke",
    "drink",
    "background_father",
    "background_mother",
    "age",
    "pesticide",
    "gender",
    "skin_cancer_history",
    "cancer_history",
    "has_piped_water",
    "has_sewage_system",
    "fitspatrick",
    "region",
    "diameter_1",
    "diameter_2",
    "diagnostic",
    "itch",
    "grew",
    "hurt",
    "changed",
    "bleed",
    "elevation",
    "img_id",
    "biopsed",
]


def _png(path, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (20, 20), 128 if mode == "L" else (120, 80, 40)).save(path)


def write_pad(root, images_dir="images"):
    """Five rows as the archive has them: images split over imgs_part_1/2, UNK and empty values."""
    rows = [
        ("PAT_1", 10, "POMERANIA", "POMERANIA", 71, "FEMALE", 1, "BCC", "PAT_1_10_1.png"),
        ("PAT_1", 11, "POMERANIA", "POMERANIA", 71, "FEMALE", 1, "ACK", "PAT_1_11_2.png"),
        ("PAT_2", 20, "GERMANY", "ITALY", 45, "MALE", 3, "MEL", "PAT_2_20_3.png"),
        ("PAT_3", 30, "UNK", "ITALY", "", "MALE", "", "NEV", "PAT_3_30_4.png"),
        ("PAT_4", 40, "", "BRAZIL", 58, "UNK", 5, "SCC", "PAT_4_40_5.png"),
    ]
    table = pd.DataFrame("False", index=range(len(rows)), columns=PAD_COLUMNS)
    named = ["patient_id", "lesion_id", "background_father", "background_mother", "age", "gender"]
    named += ["fitspatrick", "diagnostic", "img_id"]
    for k, column in enumerate(named):
        table[column] = [r[k] for r in rows]
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "metadata.csv", index=False)
    for i, name in enumerate(table["img_id"]):
        _png(root / images_dir / f"imgs_part_{1 + i % 2}" / name, "RGBA" if i % 2 else "RGB")
    return root


def test_pad_reads_the_archive_layout(tmp_path):
    root = write_pad(tmp_path / "pad")
    cohort = load_source({"kind": "pad_ufes20", "csv": "metadata.csv", "images": "images"}, base_dir=root)
    t = cohort.table
    assert cohort.labels == ["cancer"] and cohort.class_names["cancer"] == ["not cancer", "cancer"]
    assert t["cancer"].tolist() == [1, 0, 1, 0, 1]
    assert t["sex"].tolist() == ["female", "female", "male", "male", None]
    assert t["fst"].tolist()[:3] == [1, 1, 3] and t["fst"].isna().tolist() == [False] * 3 + [True, False]
    assert t["age"].isna().tolist() == [False, False, False, True, False]
    # both parents recorded and equal -> the country; differ -> mixed; UNK/empty -> missing
    assert t["ancestry"].tolist() == ["Pomerania", "Pomerania", "mixed", None, None]
    assert t["path"].tolist()[:2] == ["imgs_part_1/PAT_1_10_1.png", "imgs_part_2/PAT_1_11_2.png"]
    assert t["patient_id"].tolist() == ["PAT_1", "PAT_1", "PAT_2", "PAT_3", "PAT_4"]
    six = load_source({"kind": "pad_ufes20", "csv": root / "metadata.csv", "label": "diagnostic"})
    assert six.class_names["diagnostic"] == ["ACK", "BCC", "MEL", "NEV", "SCC", "SEK"]
    assert six.y().tolist() == [1, 0, 2, 3, 4]
    # missing is not a group unless asked
    assert cohort.groups("sex").cat.categories.tolist() == ["female", "male"]
    assert "missing" in cohort.groups("sex+missing").cat.categories


def test_pad_missing_image_is_named_or_dropped(tmp_path):
    root = write_pad(tmp_path / "pad")
    (root / "images" / "imgs_part_1" / "PAT_2_20_3.png").unlink()
    spec = {"kind": "pad_ufes20", "csv": root / "metadata.csv", "images": root / "images"}
    with pytest.raises(DataError) as err:
        load_source(spec)
    assert str(err.value) == (
        f"{root / 'metadata.csv'}: column 'img_id' row 2: image 'PAT_2_20_3.png' not found under"
        f" {root / 'images'} (1 missing; set missing_images: drop to skip them)"
    )
    cohort = load_source({**spec, "missing_images": "drop"})
    assert len(cohort) == 4 and cohort.meta["dropped_missing_images"] == 1


def test_pad_follows_a_symlinked_images_folder(tmp_path):
    """A new user's set-up: the images live on another disk, linked into the data folder."""
    write_pad(tmp_path / "disk", images_dir="pad_images")
    data = tmp_path / "data"
    data.mkdir()
    (data / "metadata.csv").write_bytes((tmp_path / "disk" / "metadata.csv").read_bytes())
    (data / "images").symlink_to(tmp_path / "disk" / "pad_images", target_is_directory=True)
    cohort = load_source({"kind": "pad_ufes20", "csv": "metadata.csv", "images": "images"}, base_dir=data)
    from fairmed.data.images import load_images

    arr = load_images(cohort, size=8, cache_dir=tmp_path / "cache")
    assert arr.kept.all() and arr.pixels.shape == (5, 8, 8, 3)


COVID_COLUMNS = [
    "patientid",
    "offset",
    "sex",
    "age",
    "finding",
    "survival",
    "intubated",
    "intubation_present",
    "went_icu",
    "in_icu",
    "needed_supplemental_O2",
    "extubated",
    "temperature",
    "pO2_saturation",
    "leukocyte_count",
    "neutrophil_count",
    "lymphocyte_count",
    "view",
    "modality",
    "date",
    "location",
    "folder",
    "filename",
    "doi",
    "url",
    "license",
    "clinical_notes",
    "other_notes",
]


def write_covid(root):
    rows = [
        ("2", "M", 65, "Pneumonia/Viral/COVID-19", "PA", "X-ray", "a.jpeg"),
        ("2", "M", 65, "Pneumonia/Viral/COVID-19", "L", "X-ray", "a-lateral.jpeg"),
        ("3", "F", "", "No Finding", "AP Supine", "X-ray", "b.png"),
        ("4", "F", 40, "COVID-19, ARDS", "AP", "X-ray", "c.jpg"),
        ("5", "M", 50, "Streptococcus", "Axial", "CT", "d.jpg"),
        ("6", "F", 30, "todo", "PA", "X-ray", "e.jpg"),
    ]
    table = pd.DataFrame("", index=range(len(rows)), columns=COVID_COLUMNS + [""])
    for k, column in enumerate(["patientid", "sex", "age", "finding", "view", "modality", "filename"]):
        table[column] = [r[k] for r in rows]
    table["folder"] = "images"
    root.mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "metadata.csv", index=False)
    for name in table["filename"]:
        _png(root / "images" / name, "L")
    return root


def test_covid_keeps_frontal_xrays_and_labels_covid(tmp_path):
    root = write_covid(tmp_path / "covid")
    cohort = load_source({"kind": "covid_cxr", "csv": "metadata.csv", "images": "images"}, base_dir=root)
    t = cohort.table
    assert t["id"].tolist() == ["a.jpeg", "b.png", "c.jpg"]
    assert t["covid"].tolist() == [1, 0, 1]
    assert t["sex"].tolist() == ["male", "female", "female"]
    assert np.isnan(t["age"].iloc[1]) and t["patient_id"].tolist() == ["2", "3", "4"]
    assert cohort.meta["dropped_other_views"] == 2 and cohort.meta["dropped_unlabelled"] == 1
    every = load_source({"kind": "covid_cxr", "csv": root / "metadata.csv", "views": [], "modality": None})
    assert len(every) == 5


def test_data_summary_on_both_layouts(tmp_path):
    pad, covid = write_pad(tmp_path / "pad"), write_covid(tmp_path / "covid")
    runner = CliRunner()
    args = ["data", "summary", "--source", "pad_ufes20", "--csv", str(pad / "metadata.csv")]
    out = runner.invoke(cli, [*args, "--images", str(pad / "images"), "--group", "fst:12-345"])
    assert out.exit_code == 0, out.output
    lines = [line.split() for line in out.output.splitlines()]
    # columns: attribute group not-cancer cancer n (class names hold a space: compare the tail)
    assert ["fst", "FST", "1-2", "1", "1", "2"] in lines and ["fst", "FST", "3-5", "0", "2", "2"] in lines
    assert ["fst", "(missing)", "1", "0", "1"] in lines
    args = ["data", "summary", "--source", "covid_cxr", "--csv", str(covid / "metadata.csv")]
    out = runner.invoke(cli, [*args, "--images", str(covid / "images"), "--group", "sex"])
    assert out.exit_code == 0, out.output
    assert "covid_cxr: 3 rows, label 'covid'" in out.output
