"""Expand template.yaml with samtranslator, as CloudFormation's SAM transform does."""

from __future__ import annotations

import copy

from conftest import TEMPLATE
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

# `sam package` replaces local CodeUri / ContentUri with S3 locations before the transform runs.
CODE_URI = "s3://fraudflow-sam-artifacts/scorer.zip"
LAYER_URI = "s3://fraudflow-sam-artifacts/ort-layer.zip"


class _NoManagedPolicies:
    """The template names no managed policies by name: nothing to look up in IAM."""

    def load(self) -> dict:
        return {}


def expand_template(parameters: dict[str, str]) -> dict:
    """`parameters` must include VersionKey (it has no default), as the scripts always pass it."""
    template = yaml_parse(TEMPLATE.read_text())
    template = copy.deepcopy(template)
    template["Resources"]["ScorerFunction"]["Properties"]["CodeUri"] = CODE_URI
    template["Resources"]["OnnxRuntimeLayer"]["Properties"]["ContentUri"] = LAYER_URI
    return transform(template, parameters, _NoManagedPolicies())
