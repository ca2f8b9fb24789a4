#!/usr/bin/env bash
# Is the package's own declaration enough? Install it from pyproject.toml alone (the lock only
# constrains versions, so that the check installs what this machine's index has) into fresh
# Python 3.11 venvs and run one smoke command per arm:
#   core:      import gistrisk, qupath_bridge; radiomics from a DICOM CT + RTSTRUCT; fit; validate
#   pathology: pip install '.[pathology]'; tile the real Aperio slide
# Needs ../shared/data beside the checkout. Called by `make test-full`.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
DATA=${GISTRISK_SHARED_DATA:-$REPO/../shared/data}
PY=${PYTHON:-python3.11}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gistrisk-declared.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [ ! -d "$DATA" ]; then echo "check_declared.sh: no shared data at $DATA" >&2; exit 2; fi

fresh() {  # fresh venv $1 with the project installed as `pip install $2` (constrained by the lock)
  "$PY" -m venv "$WORK/$1"
  "$WORK/$1/bin/python" -m pip install -qq --upgrade pip
  (cd "$WORK" && "$WORK/$1/bin/python" -m pip install -qq -c "$REPO/requirements/lock.txt" "$2")
  "$WORK/$1/bin/python" -m pip check
}

echo "== core: pip install ."
fresh core "$REPO"
B=$WORK/core/bin
cd "$WORK"   # never import from the checkout
"$B/python" -c "import gistrisk, qupath_bridge, gistrisk.cli; print('import ok', gistrisk.__version__)"
"$B/gistrisk" radiomics extract --image "$DATA/ct/dicom_ct_rtstruct_pat2" \
    --mask "$DATA/ct/dicom_ct_rtstruct_pat2/DCM_RS_00041.dcm" --segment GTV-1 \
    --params pyradiomics_baseline --out "$WORK/rtstruct.csv"
"$B/python" - "$WORK" <<'PY'
import sys
from pathlib import Path
from gistrisk.survival.synthetic import make_tables
d = Path(sys.argv[1])
for name, seed in (("dev", 1), ("ext", 2)):
    tables, out, _ = make_tables(120, p={"clinical": 5, "radiomics": 20}, seed=seed)
    for m, df in tables.items():
        df.reset_index().to_csv(d / f"{name}_{m}.csv", index=False)
    out.reset_index().to_csv(d / f"{name}_outcomes.csv", index=False)
(d / "fit.yaml").write_text("bootstrap: 20\nmodality: {rsf: {n_estimators: 20, cv_folds: 3}, lasso: {cv_folds: 3}}\n"
                            "fusion: {oof_folds: 3}\n")
PY
"$B/gistrisk" fit --outcomes dev_outcomes.csv -m clinical=dev_clinical.csv -m radiomics=dev_radiomics.csv \
    --config fit.yaml --out model
"$B/gistrisk" validate --model model --outcomes ext_outcomes.csv -m clinical=ext_clinical.csv \
    -m radiomics=ext_radiomics.csv --out val --bootstrap 20
test -s val/metrics.json && test -s val/report.html

echo "== pathology: pip install '.[pathology]'"
fresh path "$REPO[pathology]"
"$WORK/path/bin/gistrisk" pathology tiles --slide "$DATA/wsi/CMU-1-Small-Region.svs" --out "$WORK/cmu.tiles.parquet"
test -s "$WORK/cmu.tiles.parquet"
echo "check_declared.sh: the declared dependencies are enough"
