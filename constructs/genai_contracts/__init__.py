"""genai-contracts: the one home of every contract the construct library and the runtime share.

Both sides import this package; it imports pydantic and the standard library only (no aws-cdk-lib,
jsii, torch or boto3), and nothing of ``genai_cdk``, ``genai_runtime``, ``lambdas`` or ``cdk_app``
(``tests/unit/test_layering.py`` guards both). Each contract is written here once and its other
forms are generated from it:

- ``lmi_options`` / ``lmi_engine`` / ``instance_types``: ``LmiOptions`` and what the pinned LMI
  engines and SageMaker instance types accept; ``OPTION_*`` variables and ``serving.properties``
  are rendered from it, ``cdk_app``'s YAML and ``genai optimize package`` build it.
- ``train_config``: ``TrainConfig``, what ``genai train`` reads and ``FineTuningPipeline`` checks.
- ``evaluation``: the ROUGE metric names and the ``NAME=VALUE`` lines SageMaker reads them from.
- ``names``: the Lambda functions' environment variables and Powertools service names.
- ``api_requests``: the pydantic request models of the RAG query API and the agent API;
  ``api_gateway.request_schema`` turns one into the JSON Schema (draft 4) API Gateway enforces.
- ``vector_index``: the OpenSearch k-NN index mapping (``index_body``).

``genai_cdk.lmi_options``, ``genai_cdk.lmi_engine``, ``genai_cdk.instance_types``,
``genai_cdk.train_config`` and ``genai_cdk._validation`` re-export the moved modules.
"""
