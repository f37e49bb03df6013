"""Data stage: dataset folders, import of labelled micrographs, augmentation, AD/SD mixing and splits."""
