"""Data stage: dataset folders, labelme import/export, augmentation, AD/SD mixing and splits."""
