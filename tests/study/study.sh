#!/bin/sh
# study.sh: the device-population study of issue 12 (`make study`), run
# through the real `qn` binary on a fresh database, every job spec a file of
# this folder. Prints a progress line per stage and, at the end, the study's
# table (Markdown, also written to $OUT/table.md).
#
#   1. Variability: crn_relu, kappa lognormal cv 0.3, output noise sd 1.0.
#      Nominal and hardware-aware training through a surrogate conditioned on
#      kappa, both scored through the real device on chips 1..20 (all 10000
#      test images, noise on); then the nominal model fine-tuned physics_aware
#      on chip 1 for 1 epoch ("from" the stored model), scored on chip 1.
#   2. Mismatch: a twin (crn_relu, kappa 0.01) and a real device (an `ode`
#      with a leak); in-silico (via the twin's surrogate), physics_aware (real
#      forward, twin backward) and via device, scored on the real device.
#   3. Hodgkin-Huxley, gK lognormal cv 0.1: nominal and hardware-aware through
#      a surrogate conditioned on gk, scored through the real ODE on chips
#      1..10 and the first 1000 test images (an HH solve skips the repeated
#      cycles of its spike train and stops at rest: about 0.3 ms of one core
#      here, bench_hh, against 1.0-1.2 ms integrating all 500 ms).
#
# Usage: tests/study/study.sh [QN] (default build/qn). Environment: OUT (the
# folder of the database, the job records and the table; default
# build/study), WORKERS (default: the CPUs). Needs jq.
set -eu

QN=${1:-build/qn}
DIR=$(dirname "$0")
OUT=${OUT:-build/study}
WORKERS=${WORKERS:-$(nproc)}
DB=$OUT/study.db
START=$(date +%s)
STAGES=29
STAGE=0

mkdir -p "$OUT/records"
rm -f "$DB" "$DB-wal" "$DB-shm" "$DB.lock" "$OUT"/records/*.json

# Prints the progress line of the next stage: elapsed time, stage k/N, what.
progress() {
    STAGE=$((STAGE + 1))
    t=$(($(date +%s) - START))
    printf '[%2d:%02d] stage %2d/%d: %s\n' $((t / 60)) $((t % 60)) "$STAGE" "$STAGES" "$1"
}

# Runs the job of $DIR/$1.json; its record goes to $OUT/records/$1.json.
run() {
    progress "$1 ($(jq -r .name "$DIR/$1.json"))"
    if ! "$QN" run "$DIR/$1.json" --db "$DB" --workers "$WORKERS" \
        > "$OUT/records/$1.json" 2> "$OUT/records/$1.err"; then
        echo "study: job $1 failed:" >&2
        cat "$OUT/records/$1.err" "$OUT/records/$1.json" >&2
        exit 1
    fi
}

# A result field of a job's record, as a percentage with 2 decimals.
pct() { jq -r ".result.$2 * 100 | . * 100 | round / 100" "$OUT/records/$1.json"; }
# The accuracy of chip $2 in an evaluate-on-chips record, as a percentage.
chip_pct() { jq -r "[.result.chips[] | select(.chip == $2)][0].accuracy * 100 | . * 100 | round / 100" \
    "$OUT/records/$1.json"; }

for d in crn crn_chip crn_real hh_chip; do
    progress "device dev_$d ($(jq -r .name "$DIR/dev_$d.json"))"
    "$QN" device add "$DIR/dev_$d.json" --db "$DB" > /dev/null
done
for j in sweep_crn sweep_crn_cond sweep_hh_cond fit_crn fit_crn_cond fit_hh_cond \
    train_crn_nominal train_crn_hw eval_crn_nominal_ideal eval_crn_nominal eval_crn_hw \
    train_crn_tune eval_crn_tuned \
    train_mm_insilico train_mm_pat train_mm_device eval_mm_insilico eval_mm_pat eval_mm_device \
    train_hh_nominal train_hh_hw eval_hh_nominal_ideal eval_hh_nominal eval_hh_hw; do
    run "$j"
done

# One row of a population's table: training, nominal device, chips mean +- sd, min, max.
chips_row() {
    printf '| %s | %s | %s ± %s | %s | %s |\n' "$1" "$(pct "$2" accuracy)" \
        "$(pct "$3" accuracy_mean)" "$(pct "$3" accuracy_sd)" "$(pct "$3" accuracy_min)" \
        "$(pct "$3" accuracy_max)"
}

progress "table"
T=$OUT/table.md
{
    echo "Fashion-MNIST test accuracy (%), 784-128-10, 5 epochs, seed 1, scored through the real ODE;"
    echo "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, $WORKERS workers."
    echo
    echo "1. crn_relu, κ lognormal cv 0.3, output noise sd 1.0 (10000 images, chips 1..20):"
    echo
    echo "| training | nominal device, no noise | 20 chips, mean ± sd | min | max |"
    echo "|---|---|---|---|---|"
    chips_row "nominal (via κ-conditioned surrogate)" eval_crn_nominal_ideal eval_crn_nominal
    printf '| hardware-aware | – | %s ± %s | %s | %s |\n' "$(pct eval_crn_hw accuracy_mean)" \
        "$(pct eval_crn_hw accuracy_sd)" "$(pct eval_crn_hw accuracy_min)" "$(pct eval_crn_hw accuracy_max)"
    echo
    printf 'Chip 1: nominal %s, hardware-aware %s, nominal fine-tuned physics_aware on chip 1 (1 epoch) %s.\n' \
        "$(chip_pct eval_crn_nominal 1)" "$(chip_pct eval_crn_hw 1)" "$(pct eval_crn_tuned accuracy)"
    echo
    echo "2. Mismatch: twin crn_relu κ 0.01, real device dy/dt = κ + u1·y − y² − 2.5·y (10000 images):"
    echo
    echo "| training | on the twin (surrogate) | on the real device |"
    echo "|---|---|---|"
    printf '| in-silico (via the twin'"'"'s surrogate) | %s | %s |\n' \
        "$(pct train_mm_insilico test_accuracy)" "$(pct eval_mm_insilico accuracy)"
    printf '| physics_aware (real forward, twin backward) | – | %s |\n' "$(pct eval_mm_pat accuracy)"
    printf '| via device (real ODE both ways) | – | %s |\n' "$(pct eval_mm_device accuracy)"
    echo
    echo "3. hodgkin_huxley, gK lognormal cv 0.1 (the first 1000 test images, chips 1..10):"
    echo
    echo "| training | nominal device | 10 chips, mean ± sd | min | max |"
    echo "|---|---|---|---|---|"
    chips_row "nominal (via gK-conditioned surrogate)" eval_hh_nominal_ideal eval_hh_nominal
    printf '| hardware-aware | – | %s ± %s | %s | %s |\n' "$(pct eval_hh_hw accuracy_mean)" \
        "$(pct eval_hh_hw accuracy_sd)" "$(pct eval_hh_hw accuracy_min)" "$(pct eval_hh_hw accuracy_max)"
    t=$(($(date +%s) - START))
    echo
    printf 'The study took %d min %02d s.\n' $((t / 60)) $((t % 60))
} > "$T"
cat "$T"
