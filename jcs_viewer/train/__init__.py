"""Training and evaluation of the shipped lite models on the public data.

Modules (import the one you need; none imports torch at package import):

* :mod:`~jcs_viewer.train.splits` — our MedSeg split (contiguous blocks) and the COVID-CT split;
* :mod:`~jcs_viewer.train.window` — the estimated HU window of the 8-bit training slices;
* :mod:`~jcs_viewer.train.lesion_labels` — LA-DNN's five lesion attributes, all mapped;
* :mod:`~jcs_viewer.train.datasets`, :mod:`~jcs_viewer.train.images` — in-memory data sets;
* :mod:`~jcs_viewer.train.augment`, :mod:`~jcs_viewer.train.losses` — augmentation and losses;
* :mod:`~jcs_viewer.train.seg_train`, :mod:`~jcs_viewer.train.cls_train` — the training loops;
* :mod:`~jcs_viewer.train.metrics`, :mod:`~jcs_viewer.train.evaluate`, :mod:`~jcs_viewer.train.predict` —
  held-out evaluation (``jcs-viewer evaluate``);
* :mod:`~jcs_viewer.train.ship` — fp16 export, test-split metrics and the manifest entry.
"""
