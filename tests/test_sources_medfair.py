"""MEDFAIR's data sets, each on a tiny fixture written in its publisher's layout (real column names
and value codings, a few generated images)."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fairmed import DataError
from fairmed.cli import cli
from fairmed.data.images import load_images
from fairmed.data.sources import load_source

OBSERVATIONS = [
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
]  # fmt: skip


def _image(path, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full((24, 20), 40000, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (20, 24), 90 if mode == "L" else (90, 60, 30)).save(path)


def test_chexpert_train_valid_and_demo(tmp_path):
    folder = tmp_path / "CheXpert-v1.0-small"
    rows = [  # Path, Sex, Age, Frontal/Lateral, AP/PA, No Finding, Pleural Effusion
        ("train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP", 1.0, None),
        ("train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", None, 1.0, None),
        ("train/patient00002/study2/view1_frontal.jpg", "Male", 87, "Frontal", "AP", None, -1.0),
        ("train/patient00003/study1/view1_frontal.jpg", "Unknown", 41, "Frontal", "PA", -1.0, 1.0),
    ]
    table = pd.DataFrame(
        0.0, index=range(4), columns=["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]
    )
    for k, column in enumerate(
        ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Pleural Effusion"]
    ):
        table[column] = [r[k] for r in rows]
    table["Path"] = "CheXpert-v1.0-small/" + table["Path"]
    folder.mkdir()
    table.iloc[:3].to_csv(folder / "train.csv", index=False)
    table.iloc[3:].assign(Path=lambda d: d["Path"].str.replace("train/", "valid/")).to_csv(
        folder / "valid.csv", index=False
    )
    for p in [*table["Path"].iloc[:3], table["Path"].iloc[3].replace("train/", "valid/")]:
        _image(tmp_path / p)
    demo = pd.DataFrame(
        {
            "PATIENT": ["patient00001", "patient00002", "patient00003"],
            "GENDER": ["Female", "Male", "Male"],
            "AGE_AT_CXR": [68, 87, 41],
            "PRIMARY_RACE": ["White, non-Hispanic", "Black or African American", "Patient Refused"],
            "ETHNICITY": ["Non-Hispanic/Non-Latino", "Unknown", "Unknown"],
        }
    )
    demo.to_csv(tmp_path / "CHEXPERT DEMO.csv", index=False)
    spec = {
        "kind": "chexpert",
        "csv": ["CheXpert-v1.0-small/train.csv", "CheXpert-v1.0-small/valid.csv"],
        "demographics": "CHEXPERT DEMO.csv",
    }
    cohort = load_source(spec, base_dir=tmp_path)
    t = cohort.table
    assert len(t) == 3  # the lateral view is left out
    assert t["finding"].tolist() == [1, 0, 0]  # No Finding; -1 (uncertain) counts as 0 (U-Zeros)
    assert cohort.class_names["finding"] == ["finding", "no finding"]
    assert t["sex"].tolist() == ["female", "male", None]
    assert t["race"].tolist()[:2] == ["White", "Black"] and pd.isna(t["race"].iloc[2])  # refused: missing
    assert t["patient_id"].tolist() == ["patient00001", "patient00002", "patient00003"]
    assert load_images(cohort, 8, cache_dir=tmp_path / "c").kept.all()
    effusion = load_source({**spec, "label": "Pleural Effusion", "uncertain": "drop"}, base_dir=tmp_path)
    assert effusion.table["finding"].tolist() == [0, 1] and effusion.meta["dropped_uncertain"] == 1
    ones = load_source({**spec, "label": "Pleural Effusion", "uncertain": "ones"}, base_dir=tmp_path)
    assert ones.table["finding"].tolist() == [0, 1, 1]


def test_mimic_cxr_jpg_with_mimic_iv_patients_and_admissions(tmp_path):
    meta = pd.DataFrame(
        {
            "dicom_id": ["d1", "d2", "d3", "d4"],
            "subject_id": [10000032, 10000032, 10000764, 19999987],
            "study_id": [50414267, 50414267, 57375967, 55368167],
            "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
            "ViewPosition": ["PA", "LATERAL", "AP", "PA"],
            "Rows": 3056,
            "Columns": 2544,
            "StudyDate": [21800506, 21800506, 21321015, 21450812],
            "StudyTime": 213014.531,
        }
    )
    labels = pd.DataFrame(
        {"subject_id": [10000032, 10000764, 19999987], "study_id": [50414267, 57375967, 55368167]}
    )
    for column in OBSERVATIONS:
        labels[column] = np.nan
    labels["No Finding"] = [1.0, np.nan, -1.0]
    patients = pd.DataFrame(
        {
            "subject_id": [10000032, 10000764, 19999987],
            "gender": ["F", "M", "F"],
            "anchor_age": [52, 86, 36],
            "anchor_year": [2180, 2132, 2145],
            "anchor_year_group": ["2014 - 2016", "2011 - 2013", "2008 - 2010"],
            "dod": [None, None, None],
        }
    )
    admissions = pd.DataFrame(
        {
            "subject_id": [10000032, 10000032, 10000764, 19999987, 19999987],
            "hadm_id": [1, 2, 3, 4, 5],
            "insurance": ["Medicaid", "Other", "Medicare", "Other", "Other"],
            "race": [
                "WHITE",
                "WHITE - OTHER EUROPEAN",
                "ASIAN - CHINESE",
                "BLACK/AFRICAN AMERICAN",
                "UNKNOWN",
            ],
        }
    )
    meta.to_csv(tmp_path / "mimic-cxr-2.0.0-metadata.csv.gz", index=False)
    labels.to_csv(tmp_path / "mimic-cxr-2.0.0-chexpert.csv.gz", index=False)
    patients.to_csv(tmp_path / "patients.csv.gz", index=False)
    admissions.to_csv(tmp_path / "admissions.csv.gz", index=False)
    _image(tmp_path / "jpg" / "files/p10/p10000032/s50414267/d1.jpg")
    _image(tmp_path / "jpg" / "files/p10/p10000764/s57375967/d3.jpg")
    _image(tmp_path / "jpg" / "files/p19/p19999987/s55368167/d4.jpg")
    spec = {
        "kind": "mimic_cxr",
        "metadata": "mimic-cxr-2.0.0-metadata.csv.gz",
        "labels": "mimic-cxr-2.0.0-chexpert.csv.gz",
        "patients": "patients.csv.gz",
        "admissions": "admissions.csv.gz",
        "images": "jpg",
    }
    cohort = load_source(spec, base_dir=tmp_path)
    t = cohort.table
    assert t["id"].tolist() == ["d1", "d3", "d4"]  # the lateral d2 is left out
    assert t["path"].iloc[0] == "files/p10/p10000032/s50414267/d1.jpg"
    assert t["finding"].tolist() == [1, 0, 0]
    assert t["sex"].tolist() == ["female", "male", "female"]
    assert t["age"].tolist() == [52.0, 86.0, 36.0]  # anchor_age + study year - anchor_year
    assert t["race"].tolist() == ["White", "Asian", "Black"]  # two White codes agree; UNKNOWN is no vote
    assert t["insurance"].tolist() == ["Medicaid", "Medicare", "Other"]  # tie -> first alphabetically
    assert t["patient_id"].tolist() == ["10000032", "10000764", "19999987"]
    assert set(cohort.attributes) == {"sex", "age", "race", "insurance"}


def test_nih_chestxray14_parts_and_ages(tmp_path):
    table = pd.DataFrame(
        {
            "Image Index": ["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000003_000.png"],
            "Finding Labels": ["Cardiomegaly", "Cardiomegaly|Emphysema", "No Finding", "Effusion"],
            "Follow-up #": [0, 1, 0, 0],
            "Patient ID": [1, 1, 2, 3],
            "Patient Age": ["058Y", "058Y", "081Y", "411"],
            "Patient Gender": ["M", "M", "F", "F"],
            "View Position": ["PA", "PA", "PA", "AP"],
            "OriginalImage[Width": 2682,
            "Height]": 2749,
            "OriginalImagePixelSpacing[x": 0.143,
            "y]": 0.143,
        }
    )
    table.to_csv(tmp_path / "Data_Entry_2017.csv", index=False)
    for i, name in enumerate(table["Image Index"]):
        _image(tmp_path / "nih" / f"images_{1 + i // 2:03d}" / "images" / name)
    cohort = load_source(
        {"kind": "nih_cxr14", "csv": "Data_Entry_2017.csv", "images": "nih"}, base_dir=tmp_path
    )
    t = cohort.table
    assert t["finding"].tolist() == [0, 0, 1, 0]
    assert t["path"].tolist()[2] == "images_002/images/00000002_000.png"
    assert t["age"].iloc[:3].tolist() == [58.0, 58.0, 81.0] and np.isnan(t["age"].iloc[3])
    assert cohort.meta["implausible_ages"] == 1
    assert t["sex"].tolist() == ["male", "male", "female", "female"]
    emphysema = load_source(
        {"kind": "nih_cxr14", "csv": tmp_path / "Data_Entry_2017.csv", "label": "Emphysema"}
    )
    assert emphysema.table["finding"].tolist() == [0, 1, 0, 0]
    with pytest.raises(Exception, match="expected 'No Finding' or one of"):
        load_source({"kind": "nih_cxr14", "csv": tmp_path / "Data_Entry_2017.csv", "label": "Effusions"})


def test_padchest_16_bit_pngs_birth_year_and_labels(tmp_path):
    table = pd.DataFrame(
        {
            "ImageID": ["a.png", "b.png", "c.png", "d.png"],
            "ImageDir": [0, 0, 12, 12],
            "StudyDate_DICOM": [20121227, 20140115, 20090312, 20150101],
            "StudyID": ["s1", "s2", "s3", "s4"],
            "PatientID": ["p1", "p1", "p2", "p3"],
            "PatientBirth": [1948.0, 1948.0, 1990.0, 1960.0],
            "PatientSex_DICOM": ["M", "M", "F", "O"],
            "ViewPosition_DICOM": ["POSTEROANTERIOR", "LATERAL", "ANTEROPOSTERIOR", "POSTEROANTERIOR"],
            "Projection": ["PA", "L", "AP_horizontal", "PA"],
            "MethodProjection": "Manual review of DICOM fields",
            "Labels": [
                "['normal']",
                "['normal']",
                "['pneumonia', 'COPD signs']",
                "['chronic changes', 'normal']",
            ],
        }
    )
    table.to_csv(tmp_path / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", index=False)
    for folder, name in zip(table["ImageDir"], table["ImageID"]):
        _image(tmp_path / "png" / str(folder) / name, "I;16")
    spec = {
        "kind": "padchest",
        "csv": "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
        "images": "png",
    }
    cohort = load_source(spec, base_dir=tmp_path)
    t = cohort.table
    assert t["id"].tolist() == ["a.png", "c.png", "d.png"]  # the lateral is left out
    assert t["finding"].tolist() == [1, 0, 1] and cohort.class_names["finding"] == ["finding", "no finding"]
    assert t["age"].tolist() == [64.0, 19.0, 55.0]
    assert t["sex"].tolist() == ["male", "female", None]
    assert t["path"].tolist()[1] == "12/c.png"
    pixels = load_images(cohort, 8, cache_dir=tmp_path / "c").pixels
    assert (np.asarray(pixels) == 156).all()  # 40000 * 255 / 65535 = 155.6
    pneumonia = load_source({**spec, "label": "pneumonia"}, base_dir=tmp_path)
    assert pneumonia.table["finding"].tolist() == [0, 1, 0]


def test_papila_both_eyes_and_the_title_row(tmp_path):
    clinical = tmp_path / "ClinicalData"
    clinical.mkdir()
    columns = ["ID", "Age", "Gender", "Diagnosis", "dioptre_1", "dioptre_2", "astigmatism"]
    od = pd.DataFrame(
        [["#002", 39, 0, 0, -1.5, -0.5, 90], ["#004", 73, 1, 1, 0.25, -1.0, 85], ["#005", 61, 1, 2, 1, 0, 0]],
        columns=columns,
    )
    title = pd.DataFrame([columns], columns=["Patient data (OS)"] + [""] * 6)  # a title row above the header
    os_ = pd.concat([title, pd.DataFrame(od.to_numpy(), columns=title.columns)], ignore_index=True)
    od.to_csv(clinical / "patient_data_od.csv", index=False)
    os_.to_csv(clinical / "patient_data_os.csv", index=False)
    for name in ["RET002OD", "RET004OD", "RET005OD", "RET002OS", "RET004OS", "RET005OS"]:
        _image(tmp_path / "FundusImages" / f"{name}.jpg", "RGB")
    spec = {
        "kind": "papila",
        "od": "ClinicalData/patient_data_od.csv",
        "os": "ClinicalData/patient_data_os.csv",
        "images": "FundusImages",
    }
    cohort = load_source(spec, base_dir=tmp_path)
    t = cohort.table
    assert t["id"].tolist() == ["RET002OD", "RET004OD", "RET002OS", "RET004OS"]  # suspects dropped
    assert t["glaucoma"].tolist() == [0, 1, 0, 1]
    assert t["sex"].tolist() == ["male", "female", "male", "female"]
    assert t["patient_id"].tolist() == ["002", "004", "002", "004"]
    assert cohort.meta["dropped_suspect"] == 2
    assert load_source({**spec, "suspect": "positive"}, base_dir=tmp_path).table["glaucoma"].sum() == 4


def test_ddi_skin_tone_pairs(tmp_path):
    table = pd.DataFrame(
        {
            "": [0, 1, 2],
            "DDI_ID": [1, 2, 3],
            "DDI_file": ["000001.png", "000002.png", "000003.png"],
            "skin_tone": [56, 12, 34],
            "malignant": [True, False, False],
            "disease": ["melanoma-in-situ", "seborrheic-keratosis", "verruca-vulgaris"],
        }
    )
    table.to_csv(tmp_path / "ddi_metadata.csv", index=False)
    for name in table["DDI_file"]:
        _image(tmp_path / "images" / name, "RGB")
    cohort = load_source({"kind": "ddi", "csv": "ddi_metadata.csv", "images": "images"}, base_dir=tmp_path)
    assert cohort.table["skin_tone"].tolist() == ["FST 5-6", "FST 1-2", "FST 3-4"]
    assert cohort.y().tolist() == [1, 0, 0]
    table.assign(skin_tone=[56, 12, 3]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(
        DataError, match=r"bad.csv: column 'skin_tone' row 2: bad value 3, expected 12, 34 or 56"
    ):
        load_source({"kind": "ddi", "csv": tmp_path / "bad.csv"})


def test_data_sources_lists_every_layout():
    result = CliRunner().invoke(cli, ["data", "sources"])
    assert result.exit_code == 0, result.output
    for kind in (
        "pad_ufes20",
        "covid_cxr",
        "chexpert",
        "mimic_cxr",
        "nih_cxr14",
        "padchest",
        "papila",
        "ddi",
    ):
        assert f"\n{kind}: " in result.output
    assert "Data_Entry_2017.csv" in result.output and "CHEXPERT DEMO" in result.output
