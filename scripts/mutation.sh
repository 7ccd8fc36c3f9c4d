#!/usr/bin/env bash
# Mutation testing (mutmut 3, configured in pyproject.toml [tool.mutmut]) of the IMM core, and a table of
# the results per module. See docs/mutation.md.
#
#   bash scripts/mutation.sh                      # rlimm.induction rlimm.losses rlimm.coefficients
#   bash scripts/mutation.sh rlimm.lm.histories   # any module listed in [tool.mutmut] only_mutate
#   bash scripts/mutation.sh 'rlimm.logreg.train.x_objective*'   # or mutmut's mutant-name globs
#   bash scripts/mutation.sh agents               # a profile ([tool.mutmut.profiles.agents]): the RL
#                                                 # regulariser, neighbour draws and algorithms' losses
#   bash scripts/mutation.sh agents 'rlimm.agents.ppo.ppo.*'     # a profile, then globs of its own
#
# Environment: MUTATION_JOBS (default 1: the machine is shared), MUTATION_WORKDIR (default
# $TMPDIR/rlimm-mutation), RLIMM_DATA_DIR (default ../shared/data).
#
# mutmut writes a mutants/ folder next to pyproject.toml; to keep the checkout clean (and unaffected by
# edits made while it runs) the script copies pyproject.toml, rlimm/, tests/ and configs/ to the work
# folder and runs there. The copy is laid out as the installed package: agents/ and envs/ (mapped to
# rlimm.agents and rlimm.envs by pyproject's package-dir) become rlimm/agents/ and rlimm/envs/, so that
# mutmut (which derives module names from file paths under its source path rlimm/) sees them under
# their import names, and `import rlimm.agents` finds the copy in mutants/ before the editable install.
# A profile replaces the [tool.mutmut] settings of the copy's pyproject.toml with its own.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${MUTATION_WORKDIR:-${TMPDIR:-/tmp}/rlimm-mutation}"
jobs="${MUTATION_JOBS:-1}"
export RLIMM_DATA_DIR="${RLIMM_DATA_DIR:-$(cd "$repo/.." && pwd)/shared/data}"
mutmut="$repo/.venv/bin/mutmut"
python="$repo/.venv/bin/python"
[ -x "$mutmut" ] || { echo "mutmut is missing: $repo/.venv/bin/pip install -e '.[dev]'" >&2; exit 2; }

rm -rf "$work"
mkdir -p "$work"
cp -r "$repo/pyproject.toml" "$repo/rlimm" "$repo/tests" "$repo/configs" "$work/"
[ ! -e "$work/rlimm/agents" ] && [ ! -e "$work/rlimm/envs" ] || { echo "rlimm/agents or rlimm/envs exists" >&2; exit 2; }
cp -r "$repo/agents" "$work/rlimm/agents"
cp -r "$repo/envs" "$work/rlimm/envs"
find "$work" -name __pycache__ -type d -prune -exec rm -rf {} +

# A profile: its settings replace [tool.mutmut]'s in the copy; prints its default targets.
profile_py=$(cat <<'PY'
import json
import re
import sys
import tomllib
from pathlib import Path

work, profile = Path(sys.argv[1]), sys.argv[2]
path = work / "pyproject.toml"
text = path.read_text(encoding="utf-8")
settings = tomllib.loads(text)["tool"]["mutmut"]
profiles = settings.pop("profiles", {})
if profile not in profiles:
    sys.exit(f"no profile '{profile}' in [tool.mutmut.profiles]; defined: {', '.join(profiles)}")
chosen = dict(profiles[profile])
targets = chosen.pop("targets", [])
unwrap = chosen.pop("unwrap_no_grad", [])
settings.update(chosen)
kept, inside = [], False
for line in text.splitlines(keepends=True):
    if line.startswith("["):
        inside = line.strip() == "[tool.mutmut]" or line.strip().startswith("[tool.mutmut.")
    if not inside:
        kept.append(line)
kept.append(f"\n# scripts/mutation.sh: profile '{profile}'\n[tool.mutmut]\n")
kept += [f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in settings.items()]
path.write_text("".join(kept), encoding="utf-8")
# mutmut leaves decorated functions alone: `@torch.no_grad() def f` becomes `def f` … `f = torch.no_grad()(f)`
# at the end of the module (the same function object as the decorator makes; mutmut's trampoline is
# what gets wrapped, so every mutant runs without gradient as the original).
for rel in unwrap:
    source = work / rel
    code = source.read_text(encoding="utf-8")
    pattern = re.compile(r"^@torch\.no_grad\(\)\n(?=def (\w+)\()", re.M)
    names = pattern.findall(code)
    if not names:
        sys.exit(f"{rel}: no top-level @torch.no_grad() function to unwrap")
    code = pattern.sub("", code)
    code += "\n\n# scripts/mutation.sh: the decorators, applied after mutmut's trampolines\n"
    code += "".join(f"{name} = torch.no_grad()({name})\n" for name in names)
    source.write_text(code, encoding="utf-8")
print("\n".join(targets))
PY
)

targets=("$@")
if [ ${#targets[@]} -gt 0 ] && [[ "${targets[0]}" != *.* ]]; then   # a profile name (no dot)
    profile="${targets[0]}"
    targets=("${targets[@]:1}")
    mapfile -t defaults < <("$python" -c "$profile_py" "$work" "$profile")
    [ ${#defaults[@]} -gt 0 ] && [ -n "${defaults[0]}" ] || { echo "profile '$profile' failed" >&2; exit 2; }
    [ ${#targets[@]} -gt 0 ] || targets=("${defaults[@]}")
fi
[ ${#targets[@]} -gt 0 ] || targets=(rlimm.induction rlimm.losses rlimm.coefficients)
patterns=()
for t in "${targets[@]}"; do
    case "$t" in *"*"*) patterns+=("$t") ;; *) patterns+=("$t.*") ;; esac
done
cd "$work"

start=$(date +%s)
# mutmut's exit status is not a verdict (survivors do not fail it); the table below is.
"$mutmut" run --max-children "$jobs" "${patterns[@]}" || true
elapsed=$(( $(date +%s) - start ))

# The per-module table (the summary script is read first: stdin carries mutmut's results).
summary=$(cat <<'PY'
import fnmatch
import re
import sys

# Surviving mutants examined and found equivalent (no test can tell them from the original); the
# reason for each is in docs/mutation.md. Names follow mutmut's numbering of the current source: when a
# module changes, re-check its survivors with `mutmut show NAME` and update this list and the document.
EQUIVALENT = {
    "rlimm.induction.x_induced_probs__mutmut_19",  # einsum "BH,BHC->BC": upper-case subscripts are valid
    "rlimm.losses.x_kl_from_teacher__mutmut_9",  # log_p at p == 0 is masked out of every term
    "rlimm.losses.x_naive_loss__mutmut_9",  # log_softmax dim=+1 is dim=-1 on (batch, n_classes) logits
    # LM and logistic-regression loss code (docs/mutation.md, second table)
    "rlimm.lm.histories.x_induced_logits__mutmut_10",  # hidden None: the model starts from zeros itself
    "rlimm.lm.histories.x_induced_logits__mutmut_13",  # (the same, argument dropped)
    "rlimm.lm.histories.xǁHistoryIndexǁsample__mutmut_25",  # clamp to count+1: u·count < count always
    "rlimm.lm.train.xǁTrainerǁ_train_batch__mutmut_80",  # zero_grad(set_to_none=None): zeroed in place
    "rlimm.lm.train.xǁTrainerǁ_train_batch__mutmut_81",  # zero_grad(set_to_none=False): zeroed in place
    "rlimm.logreg.train.x_logits__mutmut_10",  # einsum with upper-case subscripts
    "rlimm.logreg.train.x_induced_positive_prob__mutmut_16",  # theta[:, 3:5] is theta[:, 3:4] (4 columns)
    "rlimm.logreg.train.x_train_reference__mutmut_44",  # stack of 1-D tensors: dim=+1 is dim=-1
    "rlimm.logreg.train.x_context_window__mutmut_1",  # n < size: at n == size both give arange(n)
    # the chunk size only (runs are independent problems; chunking does not change the result)
    "rlimm.logreg.train.x_train__mutmut_13",
    "rlimm.logreg.train.x_train__mutmut_14",
    "rlimm.logreg.train.x_train__mutmut_19",
    "rlimm.logreg.train.x_train__mutmut_20",
    "rlimm.logreg.train.x_train__mutmut_21",
    "rlimm.logreg.train.x_train__mutmut_22",
    "rlimm.logreg.train.x_train__mutmut_28",
    # the RL side (`bash scripts/mutation.sh agents`; docs/mutation.md, third table)
    # - float("NAN") / float("INF"): float() parses both spellings alike
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_25",
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_28",
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_57",
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_60",
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_106",
    "rlimm.agents.imm.draws.x__standardised_distances__mutmut_36",
    # - a device argument dropped or None: one device (the CPU build of torch) cannot tell them apart
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_32",  # teacher_probs.to(None)
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁ_exact_imm__mutmut_2",  # contexts.to(None)
    "rlimm.agents.imm.draws.x_knn__mutmut_10",  # arange(device=None)
    "rlimm.agents.imm.draws.x_knn__mutmut_12",  # arange() without device
    "rlimm.agents.imm.draws.x_marginal__mutmut_2",  # .to(None)
    "rlimm.agents.imm.draws.x_marginal__mutmut_6",  # randint(device=None)
    "rlimm.agents.imm.draws.x_marginal__mutmut_10",  # randint() without device
    "rlimm.agents.imm.draws.x_marginal__mutmut_28",  # full(device=None)
    "rlimm.agents.imm.draws.x_marginal__mutmut_31",  # full() without device
    # - the grad mode of the KL that is not optimised: its graph is never used (speed, memory only)
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_48",
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁcompute__mutmut_63",
    # - members .to(None) (int64): SB3 one-hot encodes a Discrete observation of any dtype
    "rlimm.agents.imm.regularizer.xǁTeacherRegularizerǁ_exact_imm__mutmut_16",
    # - exact induction handed a pool ("" or the rollout's): only sampled induction reads it
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_loss__mutmut_3",
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_loss__mutmut_5",
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_loss__mutmut_6",
    # - the recorded view: contexts are already 1-D int64 and the columns' dtypes cast on assignment;
    #   the teacher attribute always exists (getattr's default unused)
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_13",  # reshape(None)
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_15",  # dtype=None
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_17",  # no dtype
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_19",  # reshape(-2)
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_24",  # getattr without default
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_32",  # dtype=None (float32 column)
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view__mutmut_34",  # no dtype (float32 column)
    "rlimm.agents.common.mixin.xǁRegularizedMixinǁ_teacher_view_columns__mutmut_15",  # getattr default
    # - neighbours: the centring cancels in differences; any negative own distance sorts first and is
    #   overwritten by 0; topk's default dim is the last (= 1)
    "rlimm.agents.imm.draws.x__standardised_distances__mutmut_9",  # mean(dim=None)
    "rlimm.agents.imm.draws.x_knn__mutmut_16",  # own distance -2.0
    "rlimm.agents.imm.draws.x_knn__mutmut_24",  # topk without dim=1
    # - algorithms: a flag whose False and None both end the epochs; REINFORCE's dead no-entropy branch
    "rlimm.agents.ppo.ppo.xǁPPOǁtrain__mutmut_120",  # continue_training = None
    "rlimm.agents.reinforce.reinforce.xǁREINFORCEǁtrain__mutmut_27",  # `… or True`: entropy is never None
    "rlimm.agents.reinforce.reinforce.xǁREINFORCEǁtrain__mutmut_30",  # th.zeros(None) in the same dead branch
}

elapsed, patterns = int(sys.argv[1]), sys.argv[2:]
rows = {}
new_survivors = []
for line in sys.stdin:
    match = re.match(r"\s+(\S+): (.+)$", line)
    if not match or not any(fnmatch.fnmatchcase(match.group(1), p) for p in patterns):
        continue
    name, status = match.groups()
    module = re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]
    rows.setdefault(module, {"killed": 0, "survived": 0, "equivalent": 0, "other": 0})
    if status in ("killed", "timeout"):
        rows[module]["killed"] += 1
    elif status == "survived" and name in EQUIVALENT:
        rows[module]["equivalent"] += 1
    elif status == "survived":
        rows[module]["survived"] += 1
        new_survivors.append(name)
    else:  # no tests, suspicious, skipped, not checked
        rows[module]["other"] += 1
        new_survivors.append(f"{name} ({status})")

print()
print("| module | mutants | killed | survived | equivalent (explained) | other | score |")
print("|---|---:|---:|---:|---:|---:|---:|")
for m, r in rows.items():
    total = sum(r.values())
    tested = total - r["equivalent"]
    score = f"{100 * r['killed'] / tested:.1f}%" if tested else "-"
    print(f"| {m} | {total} | {r['killed']} | {r['survived']} | {r['equivalent']} | {r['other']} | {score} |")
print(f"\n{elapsed} s wall time")
if new_survivors:
    print("\nNot killed and not explained (inspect with `mutmut show NAME` in the work folder):")
    for name in new_survivors:
        print("  ", name)
sys.exit(1 if new_survivors else 0)
PY
)
"$mutmut" results --all true | "$python" -c "$summary" "$elapsed" "${patterns[@]}"
