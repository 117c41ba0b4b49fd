"""Demonstration datasets (reference train.npz / normalization.npz layout), BC windows, scripted demos.

dataset.py: save_dataset, load_dataset, fit_normalization, (de)normalize_dataset,
save/load_normalization_npz, ChunkDataset. demonstrators.py: scripted demonstrators and
collect_demos (imports the env stack; import it directly).
"""

from dppo_robot.data.dataset import (
    ChunkDataset,
    Dataset,
    DatasetError,
    denormalize_dataset,
    fit_normalization,
    load_dataset,
    load_normalization_npz,
    normalize_dataset,
    save_dataset,
    save_normalization_npz,
)

__all__ = [
    "ChunkDataset",
    "Dataset",
    "DatasetError",
    "denormalize_dataset",
    "fit_normalization",
    "load_dataset",
    "load_normalization_npz",
    "normalize_dataset",
    "save_dataset",
    "save_normalization_npz",
]
