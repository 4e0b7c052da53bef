"""The SAM-expanded template deploys to a local moto server; check what it made; tear it down.

moto's CloudFormation creates every resource (tests/moto_cfn_server.py adds the seven types moto
lacks), and the assertions read them back through the ordinary AWS APIs.
"""

from __future__ import annotations

import ast
import io
import json
import time
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from expand import CODE_URI, LAYER_URI, expand_template

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ORT_PATH = "/opt/lib/libonnxruntime.so.1.31.1"


def clients(endpoint: str):
    def make(service):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return make


def _zip(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, content)
    return buf.getvalue()


def deploy(make, stack: str, parameters: dict[str, str]) -> dict:
    """Upload stand-in code/layer zips where `sam package` would, create the stack, wait."""
    s3 = make("s3")
    for uri, name in (
        (CODE_URI, "bootstrap"),
        (LAYER_URI, "lib/libonnxruntime.so.1.31.1"),
    ):
        bucket, key = uri[len("s3://") :].split("/", 1)
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as e:
            if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=_zip(name, b"stand-in"))

    template = expand_template(parameters)
    cf = make("cloudformation")
    cf.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(template),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()
        ],
        Capabilities=["CAPABILITY_IAM"],
    )
    for _ in range(120):
        info = cf.describe_stacks(StackName=stack)["Stacks"][0]
        if not info["StackStatus"].endswith("_IN_PROGRESS"):
            break
        time.sleep(0.5)
    assert info["StackStatus"] == "CREATE_COMPLETE", info.get("StackStatusReason")
    resources = {
        r["LogicalResourceId"]: r
        for r in cf.list_stack_resources(StackName=stack)["StackResourceSummaries"]
    }
    return {
        "stack": stack,
        "template": template,
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in info["Outputs"]},
        "resources": resources,
        "physical": {k: r["PhysicalResourceId"] for k, r in resources.items()},
    }


def teardown(make, stack: str) -> None:
    cf = make("cloudformation")
    cf.delete_stack(StackName=stack)
    for _ in range(120):
        try:
            status = cf.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        except ClientError:
            return  # gone
        if status == "DELETE_COMPLETE":
            return
        assert not status.endswith("_FAILED"), status
        time.sleep(0.5)
    raise AssertionError(f"{stack} was not deleted")


@pytest.fixture(scope="module")
def make(moto_endpoint):
    return clients(moto_endpoint)


@pytest.fixture(scope="module")
def default_stack(make):
    """The stack as deploy.sh creates it with default parameters."""
    stack = deploy(
        make,
        "fraudflow",
        {"ModelPrefix": "models/2026-12-03-a1b2c3/", "VersionKey": "a1b2c3d4e5f60718"},
    )
    yield stack
    teardown(make, "fraudflow")


def _queue_attributes(make, url: str) -> dict:
    return make("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]


def test_function_runtime_environment_and_packaging(make, default_stack):
    fn = make("lambda").get_function_configuration(FunctionName="fraudflow-scorer")
    outputs = default_stack["outputs"]
    assert fn["Runtime"] == "provided.al2023"
    assert fn["Handler"] == "bootstrap"
    assert fn["Architectures"] == ["x86_64"]
    assert fn["Timeout"] == 30 and fn["MemorySize"] == 1024
    env = fn["Environment"]["Variables"]
    bucket = outputs["ModelBucketName"]
    assert env == {
        "MODEL_URI": f"s3://{bucket}/models/2026-12-03-a1b2c3/",
        "ORT_DYLIB_PATH": ORT_PATH,
        "FRAUDFLOW_ORT_THREADS": "1",
        "FRAUDFLOW_DEADLINE_MS": "200",
        "FRAUDFLOW_DEADLINE_MARGIN_MS": "50",
        "FRAUDFLOW_INIT_BUDGET_MS": "8000",
        "RESULTS_QUEUE_URL": outputs["ResultsQueueUrl"],
    }
    assert outputs["ModelUri"] == env["MODEL_URI"]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["LoggingConfig"]["LogGroup"] == "/aws/lambda/fraudflow-scorer"
    # The ONNX Runtime layer, for the same architecture, holds the file ORT_DYLIB_PATH names.
    (layer,) = fn["Layers"]
    versions = make("lambda").list_layer_versions(LayerName="fraudflow-onnxruntime")
    (version,) = versions["LayerVersions"]
    assert layer["Arn"] == version["LayerVersionArn"]
    assert version["CompatibleArchitectures"] == ["x86_64"]
    assert version["CompatibleRuntimes"] == ["provided.al2023"]
    concurrency = make("lambda").get_function_concurrency(
        FunctionName="fraudflow-scorer"
    )
    assert concurrency["ReservedConcurrentExecutions"] == 10
    groups = make("logs").describe_log_groups(
        logGroupNamePrefix="/aws/lambda/fraudflow-scorer"
    )
    (group,) = groups["logGroups"]
    assert group["retentionInDays"] == 90


def test_alias_url_and_canary(make, default_stack):
    lam = make("lambda")
    alias = lam.get_alias(FunctionName="fraudflow-scorer", Name="live")
    assert alias["FunctionVersion"] == "1"  # AutoPublishAlias published version 1
    assert default_stack["outputs"]["FunctionAliasArn"] == alias["AliasArn"]
    url = lam.get_function_url_config(FunctionName="fraudflow-scorer")
    assert url["AuthType"] == "AWS_IAM"
    assert default_stack["outputs"]["FunctionUrl"] == url["FunctionUrl"]
    # The URL belongs to the alias (moto keeps URLs per function, so read the target here).
    url_resource = default_stack["template"]["Resources"]["ScorerFunctionUrl"][
        "Properties"
    ]
    assert url_resource["TargetFunctionArn"] == {"Ref": "ScorerFunctionAliaslive"}

    cd = make("codedeploy")
    (app,) = cd.list_applications()["applications"]
    (group_name,) = cd.list_deployment_groups(applicationName=app)["deploymentGroups"]
    group = cd.get_deployment_group(applicationName=app, deploymentGroupName=group_name)
    info = group["deploymentGroupInfo"]
    assert info["computePlatform"] == "Lambda"
    assert (
        info["deploymentConfigName"]
        == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    )
    # moto's API does not return alarmConfiguration: read what CloudFormation got.
    props = default_stack["template"]["Resources"]["ScorerFunctionDeploymentGroup"][
        "Properties"
    ]
    alarms = props["AlarmConfiguration"]
    assert alarms["Enabled"] is True
    assert sorted(a["Name"]["Ref"] for a in alarms["Alarms"]) == [
        "DriftAlarm",
        "DurationP99Alarm",
        "ErrorsAlarm",
        "FallbackRateAlarm",
    ]
    assert set(props["AutoRollbackConfiguration"]["Events"]) >= {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    alias_props = default_stack["template"]["Resources"]["ScorerFunctionAliaslive"]
    assert "CodeDeployLambdaAliasUpdate" in alias_props["UpdatePolicy"]


def _statements(policy_doc) -> list[dict]:
    if isinstance(policy_doc, str):
        try:
            policy_doc = json.loads(policy_doc)
        except json.JSONDecodeError:
            # moto stores CloudFormation-made inline role policies as a Python repr.
            policy_doc = ast.literal_eval(policy_doc)
    return policy_doc["Statement"]


def test_a_new_version_key_publishes_a_new_version():
    """publish-model.sh changes ModelPrefix and VersionKey: SAM must emit a new version (and so
    CodeDeploy shifts the alias to it through the canary). ModelPrefix alone would not."""

    def versions(params):
        resources = expand_template(params)["Resources"]
        return {k for k, v in resources.items() if v["Type"] == "AWS::Lambda::Version"}

    first = versions({"ModelPrefix": "models/a/", "VersionKey": "aaaaaaaaaa11"})
    same_key = versions({"ModelPrefix": "models/b/", "VersionKey": "aaaaaaaaaa11"})
    new_key = versions({"ModelPrefix": "models/b/", "VersionKey": "bbbbbbbbbb22"})
    assert first == same_key == {"ScorerFunctionVersionaaaaaaaaaa"}
    assert new_key == {"ScorerFunctionVersionbbbbbbbbbb"}


def test_role_may_only_read_the_model_and_write_results_and_logs(make, default_stack):
    iam = make("iam")
    fn = make("lambda").get_function_configuration(FunctionName="fraudflow-scorer")
    role_name = fn["Role"].rsplit("/", 1)[-1]
    assert role_name == default_stack["physical"]["ScorerRole"]
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    trust = _statements(
        iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    )
    assert [s["Principal"] for s in trust] == [{"Service": "lambda.amazonaws.com"}]

    outputs = default_stack["outputs"]
    bucket = outputs["ModelBucketName"]
    queue_arn = lambda url: _queue_attributes(make, url)["QueueArn"]
    log_group = (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/fraudflow-scorer:*"
    )

    grants: dict[str, set[str]] = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        for statement in _statements(doc):
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                assert "*" not in action, f"wildcard action {action}"
                grants.setdefault(action, set()).update(
                    [resources] if isinstance(resources, str) else resources
                )

    assert grants == {
        "s3:GetObject": {
            f"arn:aws:s3:::{bucket}/models/*/manifest.json",
            f"arn:aws:s3:::{bucket}/models/*/model.onnx",
        },
        "sqs:ReceiveMessage": {queue_arn(outputs["TransactionsQueueUrl"])},
        "sqs:DeleteMessage": {queue_arn(outputs["TransactionsQueueUrl"])},
        "sqs:ChangeMessageVisibility": {queue_arn(outputs["TransactionsQueueUrl"])},
        "sqs:GetQueueAttributes": {queue_arn(outputs["TransactionsQueueUrl"])},
        "sqs:SendMessage": {queue_arn(outputs["ResultsQueueUrl"])},
        "logs:CreateLogStream": {log_group},
        "logs:PutLogEvents": {log_group},
    }


def test_model_bucket_is_private_versioned_encrypted_and_tls_only(make, default_stack):
    s3 = make("s3")
    bucket = default_stack["outputs"]["ModelBucketName"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    (statement,) = _statements(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(statement["Resource"]) == {
        f"arn:aws:s3:::{bucket}",
        f"arn:aws:s3:::{bucket}/*",
    }


def test_queue_dead_letter_queue_and_mapping(make, default_stack):
    outputs = default_stack["outputs"]
    source = _queue_attributes(make, outputs["TransactionsQueueUrl"])
    dlq = _queue_attributes(make, outputs["TransactionsDeadLetterQueueUrl"])
    results = _queue_attributes(make, outputs["ResultsQueueUrl"])
    redrive = json.loads(source["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == 5
    assert int(source["VisibilityTimeout"]) >= 6 * 30  # 6x the function timeout
    for attrs in (source, dlq, results):
        assert attrs["SqsManagedSseEnabled"] == "true"
        (deny,) = _statements(attrs["Policy"])
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    mappings = make("lambda").list_event_source_mappings()["EventSourceMappings"]
    (mapping,) = [m for m in mappings if m["EventSourceArn"] == source["QueueArn"]]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 10
    # Through the live alias (moto resolves it to the version the alias points at).
    assert mapping["FunctionArn"].startswith(
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fraudflow-scorer:"
    )
    assert mapping["FunctionArn"].rsplit(":", 1)[-1] in ("live", "1")


def test_alarms(make, default_stack):
    alarms = {
        a["AlarmName"]: a for a in make("cloudwatch").describe_alarms()["MetricAlarms"]
    }
    physical = default_stack["physical"]
    errors = alarms[physical["ErrorsAlarm"]]
    p99 = alarms[physical["DurationP99Alarm"]]
    fallback = alarms[physical["FallbackRateAlarm"]]
    drift = alarms[physical["DriftAlarm"]]
    dlq = alarms[physical["DeadLetterAlarm"]]
    fn_dim = [{"Name": "FunctionName", "Value": "fraudflow-scorer"}]

    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/Lambda",
        "Errors",
        "Sum",
    )
    assert errors["Dimensions"] == fn_dim and errors["Threshold"] == 1.0
    assert (p99["Namespace"], p99["MetricName"], p99["ExtendedStatistic"]) == (
        "AWS/Lambda",
        "Duration",
        "p99",
    )
    assert (
        p99["Threshold"] == 500.0
        and p99["ComparisonOperator"] == "GreaterThanThreshold"
    )
    assert (drift["Namespace"], drift["MetricName"], drift["Statistic"]) == (
        "Fraudflow",
        "DriftScore",
        "Maximum",
    )
    assert drift["Dimensions"] == fn_dim and drift["Threshold"] == 3.0

    queries = {q["Id"]: q for q in fallback["Metrics"]}
    assert set(queries) == {"heuristic", "model", "fallbackrate"}
    for qid, metric in (("heuristic", "HeuristicAnswers"), ("model", "ModelAnswers")):
        stat = queries[qid]["MetricStat"]
        assert stat["Metric"]["Namespace"] == "Fraudflow"
        assert stat["Metric"]["MetricName"] == metric
        assert stat["Metric"]["Dimensions"] == fn_dim
        assert stat["Stat"] == "Sum"
        assert queries[qid]["ReturnData"] is False
    expression = queries["fallbackrate"]["Expression"].replace(" ", "")
    assert "FILL(heuristic,0)/(FILL(heuristic,0)+FILL(model,0))" in expression
    assert queries["fallbackrate"]["ReturnData"] is True
    assert fallback["Threshold"] == 0.05

    dlq_name = _queue_attributes(
        make, default_stack["outputs"]["TransactionsDeadLetterQueueUrl"]
    )["QueueArn"].rsplit(":", 1)[-1]
    assert dlq["Namespace"] == "AWS/SQS"
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    for alarm in (errors, p99, fallback, drift, dlq):
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == []  # no AlarmEmail: no topic


def test_arm64_parameters_and_teardown(make, default_stack):
    params = {
        "VersionKey": "f00dfeed00112233",
        "Architecture": "arm64",
        "ReservedConcurrency": "3",
        "AlarmEmail": "ops@example.com",
        "DeploymentType": "Linear10PercentEvery1Minute",
        "LogRetentionDays": "30",
    }
    stack = deploy(make, "fraudflow-arm", params)
    lam = make("lambda")
    fn = lam.get_function_configuration(FunctionName="fraudflow-arm-scorer")
    assert fn["Architectures"] == ["arm64"]
    assert fn["Environment"]["Variables"]["ORT_DYLIB_PATH"] == ORT_PATH
    (version,) = lam.list_layer_versions(LayerName="fraudflow-arm-onnxruntime")[
        "LayerVersions"
    ]
    assert version["CompatibleArchitectures"] == ["arm64"]
    assert (
        lam.get_function_concurrency(FunctionName="fraudflow-arm-scorer")[
            "ReservedConcurrentExecutions"
        ]
        == 3
    )
    topic = stack["physical"]["AlarmTopic"]
    assert topic.startswith("arn:aws:sns:")
    subs = make("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subs] == [
        ("email", "ops@example.com")
    ]
    alarms = make("cloudwatch").describe_alarms(
        AlarmNames=[
            stack["physical"][a]
            for a in (
                "ErrorsAlarm",
                "DurationP99Alarm",
                "FallbackRateAlarm",
                "DriftAlarm",
            )
        ]
    )
    assert [a["AlarmActions"] for a in alarms["MetricAlarms"]] == [[topic]] * 4
    cd = make("codedeploy")
    apps = cd.list_applications()["applications"]
    (app,) = [a for a in apps if a.startswith("fraudflow-arm-")]
    (group,) = cd.list_deployment_groups(applicationName=app)["deploymentGroups"]
    info = cd.get_deployment_group(applicationName=app, deploymentGroupName=group)
    assert info["deploymentGroupInfo"]["deploymentConfigName"] == (
        "CodeDeployDefault.LambdaLinear10PercentEvery1Minute"
    )
    # The first stack is untouched by the second.
    assert lam.get_function_configuration(FunctionName="fraudflow-scorer")[
        "Architectures"
    ] == ["x86_64"]

    teardown(make, "fraudflow-arm")
    with pytest.raises(ClientError):
        lam.get_function_configuration(FunctionName="fraudflow-arm-scorer")
    bucket = stack["outputs"]["ModelBucketName"]
    assert bucket not in [b["Name"] for b in make("s3").list_buckets()["Buckets"]]
    queue_urls = make("sqs").list_queues().get("QueueUrls", [])
    assert not [u for u in queue_urls if "/fraudflow-arm-" in u]
    remaining = make("cloudwatch").describe_alarms(AlarmNamePrefix="fraudflow-arm-")
    assert remaining["MetricAlarms"] == []
    iam_roles = [r["RoleName"] for r in make("iam").list_roles()["Roles"]]
    assert stack["physical"]["ScorerRole"] not in iam_roles
    # ... and the first stack's function is still there.
    assert lam.get_function_configuration(FunctionName="fraudflow-scorer")[
        "Runtime"
    ] == ("provided.al2023")
