"""Source readers on small files written here: ISIC 2019, HAM10000, CXR embeddings, folder, specs."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairmed import Cohort, DataError, SpecError
from fairmed.data.sources import load_source, parse_source
from fairmed.data.sources.cxr_embeddings import map_race, snake

CLASSES = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]


def jpg(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture
def isic2019(tmp_path):
    ids = [f"ISIC_{i:07d}" for i in range(8)]
    gt = pd.DataFrame(np.eye(8), columns=CLASSES)
    gt.insert(0, "image", ids)
    gt["UNK"] = 0.0
    md = pd.DataFrame(
        {
            "image": ids[::-1],
            "age_approx": [30, 45, None, 60, 75, 85, 50, 40],
            "anatom_site_general": "torso",
            "lesion_id": [f"L{i}" for i in range(8)],
            "sex": ["male", "female", "", "male", "female", "male", "female", "male"],
        }
    )
    gt.to_csv(tmp_path / "gt.csv", index=False)
    md.to_csv(tmp_path / "md.csv", index=False)
    return {"kind": "isic2019", "ground_truth": tmp_path / "gt.csv", "metadata": tmp_path / "md.csv"}


def test_isic2019_one_hot_and_metadata_join(isic2019):
    cohort = load_source(isic2019)
    assert cohort.class_names["diagnosis"] == CLASSES
    assert cohort.y().tolist() == list(range(8))
    assert cohort.table["age"].tolist()[:2] == [40.0, 50.0]  # joined by image, not by row order
    assert cohort.table["sex"].isna().sum() == 1
    binary = load_source({**isic2019, "label": "malignant"})
    assert binary.y().tolist() == [1, 0, 1, 0, 0, 0, 0, 1]


def test_isic2019_errors(isic2019, tmp_path):
    gt = pd.read_csv(isic2019["ground_truth"])
    gt.loc[2, "NV"] = 1.0
    gt.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(
        DataError, match=r"two.csv: row 2 \(image 'ISIC_0000002'\): expected exactly one class = 1"
    ):
        load_source({**isic2019, "ground_truth": tmp_path / "two.csv"})
    md = pd.read_csv(isic2019["metadata"]).head(7)
    md.to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match=r"short.csv: no metadata row for image 'ISIC_0000000'"):
        load_source({**isic2019, "metadata": tmp_path / "short.csv"})


def test_ham10000_images_split_over_two_folders(tmp_path):
    md = pd.DataFrame(
        {
            "lesion_id": ["HAM_1", "HAM_1", "HAM_2", "HAM_3"],
            "image_id": ["ISIC_1", "ISIC_2", "ISIC_3", "ISIC_4"],
            "dx": ["mel", "mel", "nv", "bcc"],
            "dx_type": "histo",
            "age": [55, 55, None, 70],
            "sex": ["male", "male", "unknown", "female"],
            "localization": "back",
        }
    )
    md.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    jpg(tmp_path / "HAM10000_images_part_1" / "ISIC_1.jpg")
    jpg(tmp_path / "HAM10000_images_part_1" / "ISIC_2.jpg")
    jpg(tmp_path / "HAM10000_images_part_2" / "ISIC_3.jpg")
    spec = {
        "kind": "ham10000",
        "metadata": "HAM10000_metadata.csv",
        "images": ["HAM10000_images_part_1", "HAM10000_images_part_2"],
    }
    with pytest.raises(DataError, match=r"column 'image_id' row 3: image 'ISIC_4.jpg' not found"):
        load_source(spec, base_dir=tmp_path)
    jpg(tmp_path / "HAM10000_images_part_2" / "ISIC_4.jpg")
    cohort = load_source(spec, base_dir=tmp_path)
    assert cohort.table["path"].tolist() == [
        "HAM10000_images_part_1/ISIC_1.jpg",
        "HAM10000_images_part_1/ISIC_2.jpg",
        "HAM10000_images_part_2/ISIC_3.jpg",
        "HAM10000_images_part_2/ISIC_4.jpg",
    ]
    assert cohort.class_names["diagnosis"][cohort.y()[0]] == "mel"
    assert cohort.table["sex"].tolist() == ["male", "male", None, "female"]
    assert load_source({**spec, "label": "malignant"}, base_dir=tmp_path).y().tolist() == [1, 1, 0, 1]


def test_cxr_embeddings_join_labels_and_race_mapping(tmp_path):
    ids = np.array(["d1", "d2", "d3", "d4"])
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "emb.npz", ids=ids, embeddings=emb)
    pd.DataFrame({"dicom_id": ids, "subject_id": [1, 1, 2, 3], "study_id": [10, 11, 12, 13]}).to_csv(
        tmp_path / "meta.csv", index=False
    )
    pd.DataFrame(
        {
            "subject_id": [1, 2, 3],
            "race": ["WHITE", "BLACK/AFRICAN AMERICAN", "UNABLE TO OBTAIN"],
            "gender": ["F", "M", "F"],
            "anchor_age": [70, 40, 55],
            "insurance": ["Medicare", "Medicaid", "Other"],
        }
    ).to_csv(tmp_path / "patients.csv", index=False)
    pd.DataFrame({"study_id": [10, 11, 12, 13], "No Finding": [1.0, None, -1.0, 0.0]}).to_csv(
        tmp_path / "chexpert.csv", index=False
    )
    spec = {
        "kind": "cxr_embeddings",
        "embeddings": tmp_path / "emb.npz",
        "id_column": "dicom_id",
        "tables": [
            {"path": tmp_path / "meta.csv", "on": "dicom_id"},
            {"path": tmp_path / "patients.csv", "on": "subject_id"},
            {"path": tmp_path / "chexpert.csv", "on": "study_id"},
        ],
        "sex_column": "gender",
        "age_column": "anchor_age",
    }
    cohort = load_source(spec)
    assert cohort.labels == ["no_finding"]
    assert cohort.y().tolist() == [1, 0, 0, 0]
    assert cohort.table["race"].tolist() == ["White", "White", "Black", None]
    assert cohort.table["sex"].tolist() == ["female", "female", "male", "female"]
    assert np.array_equal(cohort.embeddings, emb)
    dropped = load_source({**spec, "uncertain": "drop"})
    assert dropped.table["id"].tolist() == ["d1", "d2", "d4"] and dropped.embeddings.shape == (3, 3)
    assert load_source({**spec, "uncertain": "positive"}).y().tolist() == [1, 0, 1, 0]
    # Parquet embeddings with a list column
    pd.DataFrame({"dicom_id": ids, "embedding": list(emb)}).to_parquet(tmp_path / "emb.parquet")
    again = load_source({**spec, "embeddings": tmp_path / "emb.parquet"})
    assert np.array_equal(again.embeddings, emb)
    # CSV embeddings: emb_0 .. emb_{d-1}, in column order
    wide = pd.DataFrame(emb[:, ::-1], columns=["emb_2", "emb_1", "emb_0"]).assign(dicom_id=ids)
    wide.to_csv(tmp_path / "emb.csv", index=False)
    from_csv = load_source({**spec, "embeddings": tmp_path / "emb.csv"})
    assert from_csv.table["id"].tolist() == ids.tolist()
    assert np.array_equal(from_csv.embeddings, emb)
    wide.loc[2, "emb_1"] = np.inf
    wide.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv: row 2: non-finite embedding values \(1 rows\)$"):
        load_source({**spec, "embeddings": tmp_path / "bad.csv"})


def test_race_mapping_and_snake_names():
    raw = pd.Series(
        [
            "HISPANIC/LATINO - PUERTO RICAN",
            "ASIAN - CHINESE",
            "PATIENT DECLINED TO ANSWER",
            None,
            "AMERICAN INDIAN/ALASKA NATIVE",
            "SOUTH AMERICAN",
        ]
    )
    # American Indian/Alaska Native is its own group (the GCE paper's Fig. 1), not "Other"
    assert map_race(raw).tolist() == [
        "Hispanic",
        "Asian",
        None,
        None,
        "American Indian/Alaska Native",
        "Other",
    ]
    assert snake("No Finding") == "no_finding" and snake("Pleural Effusion") == "pleural_effusion"


def test_folder_text_labels_and_saved_cohort_round_trip(tmp_path):
    rows = pd.DataFrame(
        {
            "image": ["a", "b", "c"],
            "file": ["x/a.jpg", "x/b.jpg", "c.jpg"],
            "dx": ["malignant", "benign", "benign"],
            "fst": [1, -1, 6],
            "sex": ["F", "M", ""],
            "site": ["arm", "leg", "arm"],
        }
    )
    rows.to_csv(tmp_path / "meta.csv", index=False)
    for name in rows["file"]:
        jpg(tmp_path / name)
    spec = {
        "kind": "folder",
        "csv": tmp_path / "meta.csv",
        "id_column": "image",
        "path_column": "file",
        "labels": "dx",
        "attributes": ["fst", "sex", "site"],
        "class_names": {"dx": ["benign", "malignant"]},
    }
    cohort = load_source(spec)
    assert cohort.y().tolist() == [1, 0, 0]
    assert cohort.table["fst"].tolist()[0] == 1 and pd.isna(cohort.table["fst"].iloc[1])
    assert cohort.table["site"].tolist() == ["arm", "leg", "arm"]
    saved = cohort.save(tmp_path / "saved.parquet")
    back = load_source({"kind": "cohort", "path": saved})
    assert isinstance(back, Cohort)
    pd.testing.assert_frame_equal(back.table, cohort.table)


def test_synth_sources_and_spec_errors():
    cohort = load_source({"kind": "synth", "seed": 2, "config": {"n": 12, "size": 8}})
    assert len(cohort) == 12 and cohort.meta["seed"] == 2
    emb = load_source({"kind": "synth_embeddings", "config": {"n": 10, "dim": 5, "preset": "skin"}})
    assert emb.embeddings.shape == (10, 5)
    with pytest.raises(SpecError, match=r"source kind 'nope': expected one of synth, synth_embeddings"):
        load_source({"kind": "nope"})
    with pytest.raises(SpecError, match=r"source \(folder\) labels: Field required"):
        parse_source({"kind": "folder", "csv": "x.csv"})
    with pytest.raises(
        SpecError, match=r"source \(synth\) config.size: Input should be greater than or equal to 8"
    ):
        parse_source({"kind": "synth", "config": {"size": 2}})
