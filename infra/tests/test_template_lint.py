"""Static checks of template.yaml: sam validate --lint, cfn-lint, checkov (offline)."""

from __future__ import annotations

import json

import pytest
from conftest import CHECKOV, INFRA, TEMPLATE, run, tool
from expand import expand_template
from samtranslator.yaml_helper import yaml_parse


def test_sam_validate_lint():
    result = run(
        [
            tool("sam"),
            "validate",
            "--lint",
            "--template",
            str(TEMPLATE),
            "--region",
            "us-east-1",
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_reports_nothing():
    result = run([tool("cfn-lint"), "--", str(TEMPLATE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def _template_skips() -> dict[tuple[str, str], str]:
    """{(resource, check id): justification} from the checkov skips in the template's Metadata."""
    template = yaml_parse(TEMPLATE.read_text())
    skips = {}
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips[(logical_id, skip["id"])] = skip.get("comment", "")
    return skips


def _checkov(path) -> dict:
    assert CHECKOV.exists(), (
        f"{CHECKOV} is missing: run infra/test.sh (it installs checkov)"
    )
    result = run(
        [
            str(CHECKOV),
            "--file",
            str(path),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    # checkov exits 1 when a check failed: the caller lists them.
    assert result.returncode in (0, 1), result.stderr
    return report


@pytest.mark.parametrize("which", ["template", "expanded"])
def test_checkov_has_no_findings_and_every_skip_is_justified(which, tmp_path):
    if which == "template":
        path = TEMPLATE
    else:  # what CloudFormation really gets: SAM's resources expanded
        path = tmp_path / "expanded.json"
        path.write_text(json.dumps(expand_template({"VersionKey": "0123456789abcdef"})))
    report = _checkov(path)
    summary, results = report["summary"], report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results.get("failed_checks", [])]
    assert failed == [], f"checkov findings: {failed}"
    assert summary["parsing_errors"] == 0
    # It really looked: bucket, role, function, log group checks ran and passed.
    passed = {c["check_id"] for c in results["passed_checks"]}
    assert {
        "CKV_AWS_19",
        "CKV_AWS_21",
        "CKV_AWS_53",
        "CKV_AWS_54",
        "CKV_AWS_55",
        "CKV_AWS_56",
        "CKV_AWS_66",
        "CKV_AWS_115",
        "CKV_AWS_45",
        "CKV_AWS_111",
    } <= passed

    skips = _template_skips()
    for key, comment in skips.items():
        assert len(comment.split()) >= 8, (
            f"skip {key} needs a real justification: {comment!r}"
        )
    skipped = {
        (c["resource"].split(".")[-1], c["check_id"]) for c in results["skipped_checks"]
    }
    if which == "template":
        # No stale suppression: each skip in the template silenced a check that ran.
        assert skipped == set(skips), (
            f"skips that matched nothing: {set(skips) - skipped}"
        )


def test_every_checkov_skip_is_in_the_readme():
    readme = (INFRA / "README.md").read_text()
    for _, check_id in _template_skips():
        assert check_id in readme, (
            f"{check_id} is suppressed in the template but not documented"
        )
