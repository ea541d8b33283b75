"""Hospital integration: studies from a PACS and results back to it (DIMSE with pynetdicom, DICOMweb with
dicomweb-client). No Qt here: the GUI and the command line both drive :mod:`jcs_viewer.pacs.client`."""
