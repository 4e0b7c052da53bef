"""moto_server with the CloudFormation resource types that moto lacks and fraudflow's template uses.

moto's CloudFormation creates S3 buckets, SQS queues, IAM roles, log groups, Lambda functions,
versions, layers and event source mappings, but not (as of moto 5.2.5) these seven types that the
SAM-expanded template contains:

    AWS::CloudWatch::Alarm, AWS::Lambda::Alias, AWS::Lambda::Url, AWS::S3::BucketPolicy,
    AWS::SQS::QueuePolicy, AWS::CodeDeploy::Application, AWS::CodeDeploy::DeploymentGroup

Without them moto skips those resources silently (and fails on outputs that read their
attributes). This module registers a CloudFormation model for each that creates, and on stack
deletion deletes, the real resource in moto's own service backend, so that the whole template
deploys through moto's CloudFormation and the tests read the result back through the ordinary
AWS APIs (describe_alarms, get_alias, get_bucket_policy, ...). It also fills gaps in moto's own
models: AWS::Lambda::Version gets the `Version` attribute that SAM's alias reads; the function
keeps Architectures, Layers and LoggingConfig; the layer its name and CompatibleArchitectures; the
bucket its versioning and public access block. Then it runs moto's server.

Usage: python moto_cfn_server.py -H 127.0.0.1 -p PORT   (same arguments as moto_server)
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, ClassVar

from moto.awslambda.exceptions import UnknownFunctionException
from moto.awslambda.models import lambda_backends
from moto.cloudwatch.models import (
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.codedeploy.models import AlarmConfiguration, codedeploy_backends
from moto.core.common_models import CloudFormationModel
from moto.s3.exceptions import MissingBucket
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends

# moto's model metaclass files every model under the service named by the second part of its
# module path; these live under their own name there.
_MOTO_MODULE = "moto_shims.fraudflow_cfn"


class _Shim:
    """Common plumbing: a physical id, attributes, and delete() called by moto on stack deletion."""

    ATTRS: ClassVar[dict[str, str]] = {}

    def __init__(
        self, physical_id: str, account_id: str, region: str, attrs: dict | None = None
    ):
        self._physical_id = physical_id
        self.account_id = account_id
        self.region = region
        self._attrs = attrs or {}

    @property
    def physical_resource_id(self) -> str:
        return self._physical_id

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRS

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        return self._attrs[attribute_name]

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource,
        new_resource_name,
        cloudformation_json,
        account_id,
        region_name,
    ):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(
            new_resource_name, cloudformation_json, account_id, region_name
        )


def _dims(dims: list[dict] | None) -> list[dict[str, str]]:
    return [{"Name": d["Name"], "Value": d["Value"]} for d in dims or []]


class Alarm(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    ATTRS: ClassVar[dict[str, str]] = {"Arn": ""}

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        queries = None
        if p.get("Metrics"):
            queries = []
            for m in p["Metrics"]:
                stat = None
                if "MetricStat" in m:
                    ms = m["MetricStat"]
                    metric = ms["Metric"]
                    stat = MetricStat(
                        metric=Metric(
                            metric_name=metric["MetricName"],
                            namespace=metric["Namespace"],
                            dimensions=[
                                Dimension(name=d["Name"], value=d["Value"])
                                for d in metric.get("Dimensions", [])
                            ],
                        ),
                        period=ms.get("Period"),
                        stat=ms.get("Stat"),
                        unit=ms.get("Unit"),
                    )
                queries.append(
                    MetricDataQuery(
                        query_id=m["Id"],
                        label=m.get("Label"),
                        period=m.get("Period"),
                        return_data=m.get("ReturnData"),
                        expression=m.get("Expression"),
                        metric_stat=stat,
                    )
                )
        name = p.get("AlarmName", resource_name)
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=name,
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=int(p["EvaluationPeriods"]),
            period=int(p["Period"]) if "Period" in p else None,
            threshold=float(p["Threshold"]),
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription"),
            dimensions=_dims(p.get("Dimensions")),
            alarm_actions=p.get("AlarmActions", []),
            metric_data_queries=queries,
            datapoints_to_alarm=int(p["DatapointsToAlarm"])
            if "DatapointsToAlarm" in p
            else None,
            extended_statistic=p.get("ExtendedStatistic"),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(name, account_id, region_name, {"Arn": alarm.alarm_arn})

    def delete(self, account_id: str, region_name: str) -> None:
        cloudwatch_backends[account_id][region_name].delete_alarms([self._physical_id])


class LambdaAlias(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Alias"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        alias = lambda_backends[account_id][region_name].create_alias(
            name=p["Name"],
            function_name=p["FunctionName"],
            function_version=str(p["FunctionVersion"]),
            description=p.get("Description", ""),
            routing_config=p.get("RoutingConfig"),
        )
        shim = cls(alias.arn, account_id, region_name)
        shim.function_name, shim.alias_name = p["FunctionName"], p["Name"]
        return shim

    def delete(self, account_id: str, region_name: str) -> None:
        # The function (and with it the alias) may be gone already.
        with contextlib.suppress(UnknownFunctionException):
            lambda_backends[account_id][region_name].delete_alias(
                self.alias_name, self.function_name
            )


class LambdaUrl(_Shim, CloudFormationModel):
    """moto keeps one URL config per function (no Qualifier): the alias's URL lands on it."""

    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Lambda::Url"

    ATTRS: ClassVar[dict[str, str]] = {"FunctionUrl": "", "FunctionArn": ""}

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        target = p["TargetFunctionArn"]
        # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER] -> NAME
        name = target.split(":")[6] if target.startswith("arn:") else target
        config: dict[str, Any] = {"AuthType": p["AuthType"]}
        if "Cors" in p:
            config["Cors"] = p["Cors"]
        if "InvokeMode" in p:
            config["InvokeMode"] = p["InvokeMode"]
        url = lambda_backends[account_id][region_name].create_function_url_config(
            name, config
        )
        arn = url.function.function_arn
        shim = cls(
            arn, account_id, region_name, {"FunctionUrl": url.url, "FunctionArn": arn}
        )
        shim.function_name = name
        return shim

    def delete(self, account_id: str, region_name: str) -> None:
        # The function (and with it the URL) may be gone already.
        with contextlib.suppress(UnknownFunctionException):
            lambda_backends[account_id][region_name].delete_function_url_config(
                self.function_name
            )


class BucketPolicy(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::S3::BucketPolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        s3_backends[account_id]["aws"].put_bucket_policy(
            p["Bucket"], json.dumps(p["PolicyDocument"]).encode()
        )
        shim = cls(p["Bucket"], account_id, region_name)
        shim.bucket = p["Bucket"]
        return shim

    def delete(self, account_id: str, region_name: str) -> None:
        # The bucket (and with it the policy) may be gone already.
        with contextlib.suppress(MissingBucket):
            s3_backends[account_id]["aws"].delete_bucket_policy(self.bucket)


class QueuePolicy(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        names = [url.rstrip("/").split("/")[-1] for url in p["Queues"]]
        for name in names:
            sqs_backends[account_id][region_name].set_queue_attributes(
                name, {"Policy": json.dumps(p["PolicyDocument"])}
            )
        shim = cls(resource_name, account_id, region_name)
        shim.queue_names = names
        return shim

    def delete(self, account_id: str, region_name: str) -> None:
        backend = sqs_backends[account_id][region_name]
        for name in self.queue_names:
            if name in backend.queues:
                backend.set_queue_attributes(name, {"Policy": ""})


class CodeDeployApplication(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::Application"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "ApplicationName"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        name = p.get("ApplicationName", resource_name)
        codedeploy_backends[account_id][region_name].create_application(
            name, p.get("ComputePlatform", "Server"), p.get("Tags", [])
        )
        return cls(name, account_id, region_name)

    def delete(self, account_id: str, region_name: str) -> None:
        codedeploy_backends[account_id][region_name].applications.pop(
            self._physical_id, None
        )


class CodeDeployDeploymentGroup(_Shim, CloudFormationModel):
    __module__ = _MOTO_MODULE

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CodeDeploy::DeploymentGroup"

    @staticmethod
    def cloudformation_name_type() -> str:
        return "DeploymentGroupName"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
    ):
        p = cloudformation_json["Properties"]
        name = p.get("DeploymentGroupName", resource_name)
        alarms = p.get("AlarmConfiguration") or {}
        codedeploy_backends[account_id][region_name].create_deployment_group(
            application_name=p["ApplicationName"],
            deployment_group_name=name,
            deployment_config_name=p.get("DeploymentConfigName"),
            ec2_tag_filters=None,
            on_premises_instance_tag_filters=None,
            auto_scaling_groups=None,
            service_role_arn=p["ServiceRoleArn"],
            alarm_configuration=AlarmConfiguration(
                alarms=alarms.get("Alarms", []),
                enabled=bool(alarms.get("Enabled", False)),
            ),
            auto_rollback_configuration=p.get("AutoRollbackConfiguration"),
            deployment_style=p.get("DeploymentStyle"),
        )
        shim = cls(name, account_id, region_name)
        shim.application = p["ApplicationName"]
        return shim

    def delete(self, account_id: str, region_name: str) -> None:
        groups = codedeploy_backends[account_id][region_name].deployment_groups
        groups.get(self.application, {}).pop(self._physical_id, None)


def _patch_lambda_version() -> None:
    """moto's AWS::Lambda::Version has no attributes; SAM's alias reads !GetAtt Version.Version."""
    from moto.awslambda.models import LambdaVersion

    def get_cfn_attribute(self, attribute_name: str) -> Any:
        if attribute_name == "Version":
            return self.version
        raise KeyError(attribute_name)

    LambdaVersion.get_cfn_attribute = get_cfn_attribute
    LambdaVersion.has_cfn_attr = classmethod(lambda cls, attr: attr == "Version")


def _patch_lambda_function_and_layer() -> None:
    """moto's CloudFormation drops properties of AWS::Lambda::Function (Architectures, Layers,
    LoggingConfig, ...) and AWS::Lambda::LayerVersion (LayerName, CompatibleArchitectures): pass
    them on, as CloudFormation does, so the tests can read them back through the Lambda API."""
    from moto.awslambda import models as lm

    fn_props = (
        "Description",
        "MemorySize",
        "Publish",
        "Timeout",
        "VpcConfig",
        "Environment",
        "ReservedConcurrentExecutions",
        "Architectures",
        "Layers",
        "TracingConfig",
        "EphemeralStorage",
        "PackageType",
    )

    def function_from_cfn(
        cls, resource_name, cloudformation_json, account_id, region_name, **kw
    ):
        p = cloudformation_json["Properties"]
        spec = {
            "Code": p["Code"],
            "FunctionName": p.get("FunctionName", resource_name),
            "Handler": p.get("Handler"),
            "Role": p["Role"],
            "Runtime": p.get("Runtime"),
        }
        spec.update({k: p[k] for k in fn_props if k in p})
        fn = lm.get_backend(account_id, region_name).create_function(spec)
        fn.fraudflow_logging_config = p.get("LoggingConfig")
        return fn

    original_configuration = lm.LambdaFunction.get_configuration

    def get_configuration(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        config = original_configuration(self, *args, **kwargs)
        logging_config = getattr(self, "fraudflow_logging_config", None)
        if logging_config:
            config["LoggingConfig"] = logging_config
        return config

    def layer_from_cfn(
        cls, resource_name, cloudformation_json, account_id, region_name, **kw
    ):
        p = cloudformation_json["Properties"]
        spec = {"Content": p["Content"], "LayerName": p.get("LayerName", resource_name)}
        for k in (
            "Description",
            "CompatibleRuntimes",
            "CompatibleArchitectures",
            "LicenseInfo",
        ):
            if k in p:
                spec[k] = p[k]
        return lm.get_backend(account_id, region_name).publish_layer_version(spec)

    lm.LambdaFunction.create_from_cloudformation_json = classmethod(function_from_cfn)
    lm.LambdaFunction.get_configuration = get_configuration
    lm.LayerVersion.create_from_cloudformation_json = classmethod(layer_from_cfn)
    # !Ref of a layer version is its ARN.
    lm.LayerVersion.physical_resource_id = property(lambda self: self.arn)


def _patch_bucket() -> None:
    """moto's CloudFormation applies only BucketEncryption and Tags of an AWS::S3::Bucket: apply
    VersioningConfiguration and PublicAccessBlockConfiguration too, as CloudFormation does."""
    from moto.s3.models import FakeBucket

    original = FakeBucket.create_from_cloudformation_json.__func__

    def bucket_from_cfn(
        cls, resource_name, cloudformation_json, account_id, region_name, **kw
    ):
        bucket = original(
            cls, resource_name, cloudformation_json, account_id, region_name, **kw
        )
        backend = s3_backends[account_id]["aws"]
        p = cloudformation_json.get("Properties", {})
        if "VersioningConfiguration" in p:
            backend.put_bucket_versioning(
                bucket.name, p["VersioningConfiguration"]["Status"]
            )
        if "PublicAccessBlockConfiguration" in p:
            # As the S3 API hands them over: "true" / "false".
            config = {
                k: str(v).lower()
                for k, v in p["PublicAccessBlockConfiguration"].items()
            }
            backend.put_public_access_block(bucket.name, config)
        return bucket

    FakeBucket.create_from_cloudformation_json = classmethod(bucket_from_cfn)


def main(argv: list[str]) -> None:
    from moto.cloudformation import parsing

    _patch_lambda_version()
    _patch_lambda_function_and_layer()
    _patch_bucket()

    # The model map is cached on first use: make sure it sees the classes above.
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    missing = [
        t
        for t in (
            "AWS::CloudWatch::Alarm",
            "AWS::Lambda::Alias",
            "AWS::Lambda::Url",
            "AWS::S3::BucketPolicy",
            "AWS::SQS::QueuePolicy",
            "AWS::CodeDeploy::Application",
            "AWS::CodeDeploy::DeploymentGroup",
        )
        if t not in parsing.get_model_map()
    ]
    assert not missing, f"resource types still unsupported: {missing}"

    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
