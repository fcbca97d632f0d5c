"""Pack one PlanetLab day (CloudSim's format) into the compact file shipped in the package.

Usage: python scripts/pack_planetlab.py PLANETLAB_FOLDER/DAY consolidate/data/planetlab-DAY.npz
(PLANETLAB_FOLDER: CloudSim's workload/planetlab folder; every day is packed so; provenance in
consolidate/data/PLANETLAB.txt)

Each source file holds 288 integer CPU percents (one per 300 s). They fit in uint8, so the day
(1052 VMs) is a 1052 x 288 byte matrix; names are kept in sorted order so the packed day and the
folder reader agree VM for VM.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from consolidate.workload.planetlab import read_planetlab_folder  # noqa: E402

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
names, pct = read_planetlab_folder(src)
np.savez_compressed(dst, util_pct=pct.astype(np.uint8), names=np.array("\n".join(names)),
                    day=np.array(src.name))
print(f"{dst}: {len(names)} VMs x {pct.shape[1]} samples, {dst.stat().st_size} bytes")
