"""The PDF report as a DICOM Encapsulated PDF (PS3.3 A.45.1), in the source study, in a series of its own.

highdicom has no class for it, so the dataset is built here module by module: Patient and General Study
(copied from the source), Encapsulated Document Series (modality DOC), General Equipment, SC Equipment,
Encapsulated Document and SOP Common.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from jcs_viewer.errors import ExportError
from jcs_viewer.report.dicom_sr import PDF_SERIES_OFFSET, series_number, study_sources

if TYPE_CHECKING:
    from jcs_viewer.io.deidentify import Pseudonymizer
    from jcs_viewer.io.volume import Volume

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
PATIENT_STUDY_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                      "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription")


def export_dicom_pdf(pdf: str | os.PathLike[str], volume: Volume, path: str | os.PathLike[str], *,
                     anonymize: bool = False, pseudonyms: Pseudonymizer | None = None) -> Path:
    """Wrap the written report ``pdf`` into ``path`` (a DICOM file) in the study of ``volume``'s sources.

    Raises:
        ExportError: no DICOM sources, an unreadable PDF, an unwritable target.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    from jcs_viewer import __version__
    from jcs_viewer.io.export import check_target, save_dataset

    path = check_target(Path(path))
    source = study_sources(volume, path)[0]
    try:
        document = Path(pdf).read_bytes()
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: the report {pdf} cannot be read ({exc.strerror or exc}).") from exc
    now = datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names are copied as they are
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    for key in PATIENT_STUDY_KEYS:  # Patient and General Study modules, as the source has them
        setattr(ds, key, source.get(key, "") if key in source else "")
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number(source, PDF_SERIES_OFFSET)
    ds.SeriesDescription = "JCS Viewer report (research use only)"
    ds.Manufacturer = "JCS Viewer developers"
    ds.ManufacturerModelName = "JCS Viewer"
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"  # workstation
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO" if anonymize else "YES"  # the report names the patient unless anonymised
    ds.DocumentTitle = "JCS Viewer COVID-19 CT report"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")  # OB values have even length
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    ds.SourceInstanceSequence = [reference]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    if anonymize:
        from jcs_viewer.io.deidentify import Pseudonymizer

        (pseudonyms or Pseudonymizer()).dataset(ds)
        ds.AcquisitionDateTime = ""  # E.1 removes it, the module requires it (type 2): present and empty
    return save_dataset(ds, path)
