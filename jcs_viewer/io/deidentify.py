"""De-identification of what we write, after DICOM PS3.15 Annex E.1 (basic application-level profile).

One :class:`Pseudonymizer` serves one output set (results.json, the DICOM SEG, later the SR), so the
pseudonymous UIDs it invents agree between those files while no original UID, name, ID, date,
institution or physician survives in any of them. UIDs are replaced by ``2.25.<128-bit hash>`` of the
original and a random per-set salt: consistent inside the set, not linkable to the source, not
reversible by hashing candidate UIDs. DICOM's own UIDs (SOP classes, transfer syntaxes, coding
schemes: the ``1.2.840.10008.`` root) are kept: they identify kinds of things, not people.

Actions (E.1 table, the subset a CT series and our derived objects carry):

- **X** (removed): other names and IDs of the patient, addresses and phone numbers, age, ethnic group,
  occupation, history and comments, institution and department, station, every physician and
  operator, protocol, study and source-series descriptions, request and procedure sequences.
- **Z** (emptied or a fixed dummy, the tag stays where the IOD requires it): patient name (a dummy
  family name) and ID, birth date, sex, study date and time (1900-01-01 00:00), referring physician, study
  ID, accession number; series and acquisition dates and times copied from the source.
- **U** (pseudonymous UIDs): every UID not in the DICOM root, in every sequence, and in the file meta.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

#: E.1 "X": attributes removed wherever they occur.
REMOVE = frozenset({
    "OtherPatientNames", "OtherPatientIDs", "OtherPatientIDsSequence", "PatientBirthName", "PatientBirthTime",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "PatientAge", "PatientSize",
    "PatientWeight", "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
    "MedicalRecordLocator", "MilitaryRank", "BranchOfService", "CountryOfResidence", "RegionOfResidence",
    "PatientReligiousPreference", "IssuerOfPatientID", "PatientInsurancePlanCodeSequence",
    "ResponsiblePerson", "ResponsibleOrganization", "PersonName",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
    "StationName", "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence",
    "NameOfPhysiciansReadingStudy", "PhysiciansReadingStudyIdentificationSequence", "PhysiciansOfRecord",
    "PhysiciansOfRecordIdentificationSequence", "OperatorsName", "OperatorIdentificationSequence",
    "RequestingPhysician", "ReferringPhysicianAddress", "ReferringPhysicianTelephoneNumbers",
    "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName", "ScheduledPerformingPhysicianName",
    "ProtocolName", "StudyDescription", "RequestAttributesSequence", "RequestedProcedureDescription",
    "PerformedProcedureStepDescription", "PerformedProcedureStepID", "ScheduledProcedureStepDescription",
    "AdmissionID", "AdmittingDiagnosesDescription", "ImageComments", "DerivationDescription",
    "AcquisitionComments", "ContributionDateTime", "ContributionDescription", "AcquisitionDateTime",
    "InstanceCreationDate", "InstanceCreationTime", "TimezoneOffsetFromUTC", "FrameComments",
})
#: E.1 "Z": attributes kept (the IOD may require them) with an empty or dummy value.
EMPTY = {
    "PatientName": "Anonymous^",  # family name only: a bare "Anonymous" is the retired PN form to dciodvfy
    "PatientID": "ANONYMOUS",
    "PatientBirthDate": "",
    "PatientSex": "",
    # Dummies rather than empty values where a DICOMDIR needs them (dciodvfy warns on empty ones).
    "StudyDate": "19000101",
    "StudyTime": "000000",
    "ReferringPhysicianName": "",
    "StudyID": "ANON",
    "AccessionNumber": "",
    "SeriesDate": "",
    "SeriesTime": "",
    "AcquisitionDate": "",
    "AcquisitionTime": "",
}
#: DICOM's own UIDs (classes, syntaxes, coding schemes) stay.
DICOM_ROOT = "1.2.840.10008."


class Pseudonymizer:
    """One output set's de-identification: a UID map and the E.1 actions on datasets and summaries."""

    def __init__(self, salt: bytes | None = None) -> None:
        self._salt = salt if salt is not None else secrets.token_bytes(32)
        self._uids: dict[str, str] = {}
        self._pseudonyms: set[str] = set()

    def uid(self, original: str) -> str:
        """The pseudonymous UID of ``original`` (the same for the same UID within this set)."""
        original = str(original).strip()
        # A pseudonym stays itself: a dataset item shared by two sequences (highdicom shares them) is
        # visited twice.
        if not original or original.startswith(DICOM_ROOT) or original in self._pseudonyms:
            return original
        if original not in self._uids:
            digest = hashlib.sha256(self._salt + original.encode("ascii", "replace")).digest()
            self._uids[original] = f"2.25.{int.from_bytes(digest[:16], 'big')}"
            self._pseudonyms.add(self._uids[original])
        return self._uids[original]

    def dataset(self, ds: Any) -> Any:
        """Apply E.1 to a pydicom dataset in place (every nested sequence and the file meta); returns it."""
        self._walk(ds)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.uid(meta.MediaStorageSOPInstanceUID)
        return ds

    def _walk(self, ds: Any) -> None:
        for element in list(ds):
            keyword = element.keyword
            if element.tag.is_private or keyword in REMOVE:
                del ds[element.tag]
            elif keyword in EMPTY:
                element.value = EMPTY[keyword]
            elif element.VR == "SQ":
                for item in element.value:
                    self._walk(item)
            elif element.VR == "UI" and element.value:
                values = element.value if element.VM > 1 else [element.value]
                mapped = [self.uid(v) for v in values]
                element.value = mapped if element.VM > 1 else mapped[0]

    def study_fields(self, study: dict[str, str]) -> dict[str, str]:
        """The study summary of ``results.json``: UIDs pseudonymous, dates and descriptions left out."""
        return {key: self.uid(value) if key.endswith("_uid") else value
                for key, value in study.items() if key.endswith("_uid") or key == "modality"}
