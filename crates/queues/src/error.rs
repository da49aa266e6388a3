//! The queue service's one error type and SQS's names for each error.
//!
//! SQS answers every failure with a modelled shape name (what the JSON protocol puts in
//! `__type`), a legacy query-protocol code (the JSON protocol's `x-amzn-query-error` header,
//! the XML `<Code>`), a status code and a fault side. botocore maps the query code back to the
//! modelled exception class, so both names must be exact.

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("The specified queue does not exist.")]
    NoSuchQueue,
    #[error("A queue already exists with the same name and a different value for attribute {0}")]
    QueueNameExists(String),
    #[error("Unknown Attribute {0}.")]
    InvalidAttributeName(String),
    #[error("{0}")]
    InvalidAttributeValue(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(String),
    #[error("{0}")]
    InvalidMessageContents(String),
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    ReceiptHandleIsInvalid(String),
    #[error("Message does not exist or is not available for visibility timeout change.")]
    MessageNotInflight,
    #[error("Id {0} repeated.")]
    BatchEntryIdsNotDistinct(String),
    #[error("There should be at least one {0} in the request.")]
    EmptyBatchRequest(String),
    #[error("Maximum number of entries per request are 10. You have sent {0}.")]
    TooManyEntriesInBatchRequest(usize),
    #[error("Batch requests cannot be longer than {0} bytes.")]
    BatchRequestTooLong(usize),
    #[error(
        "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long."
    )]
    InvalidBatchEntryId,
    #[error("Only one PurgeQueue operation on {0} is allowed every 60 seconds.")]
    PurgeQueueInProgress(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("Access to the resource {0} is denied.")]
    AccessDenied(String),
    #[error("The address {0} is not valid for this endpoint.")]
    InvalidAddress(String),
    #[error("An internal error occurred.")]
    Internal,
    #[error("Unknown operation {0}.")]
    InvalidAction(String),
}

/// How an error is named on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCode {
    /// The modelled shape (`__type` after `com.amazonaws.sqs#`).
    pub shape: &'static str,
    /// The query protocol's code.
    pub query_code: &'static str,
    pub status: u16,
    /// `Sender` or `Receiver`.
    pub fault: &'static str,
}

const fn sender(shape: &'static str, query_code: &'static str) -> WireCode {
    WireCode {
        shape,
        query_code,
        status: 400,
        fault: "Sender",
    }
}

impl QueueError {
    /// SQS's names and status for this error.
    pub fn wire(&self) -> WireCode {
        use QueueError::*;
        match self {
            NoSuchQueue => sender(
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
            ),
            QueueNameExists(_) => sender("QueueNameExists", "QueueAlreadyExists"),
            InvalidAttributeName(_) => sender("InvalidAttributeName", "InvalidAttributeName"),
            InvalidAttributeValue(_) => sender("InvalidAttributeValue", "InvalidAttributeValue"),
            InvalidParameterValue(_) => sender("InvalidParameterValue", "InvalidParameterValue"),
            MissingParameter(_) => sender("MissingParameter", "MissingParameter"),
            InvalidMessageContents(_) => sender("InvalidMessageContents", "InvalidMessageContents"),
            ReceiptHandleIsInvalid(_) => sender("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid"),
            MessageNotInflight => sender(
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
            ),
            BatchEntryIdsNotDistinct(_) => sender(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
            ),
            EmptyBatchRequest(_) => sender(
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
            ),
            TooManyEntriesInBatchRequest(_) => sender(
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            ),
            BatchRequestTooLong(_) => sender(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
            ),
            InvalidBatchEntryId => sender(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
            ),
            PurgeQueueInProgress(_) => sender(
                "PurgeQueueInProgress",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
            ),
            ResourceNotFound(_) => sender("ResourceNotFoundException", "ResourceNotFoundException"),
            UnsupportedOperation(_) => sender(
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
            ),
            AccessDenied(_) => WireCode {
                shape: "AccessDeniedException",
                query_code: "AccessDenied",
                status: 403,
                fault: "Sender",
            },
            InvalidAddress(_) => sender("InvalidAddress", "InvalidAddress"),
            InvalidAction(_) => sender("InvalidAction", "InvalidAction"),
            Internal => WireCode {
                shape: "InternalError",
                query_code: "InternalError",
                status: 500,
                fault: "Receiver",
            },
        }
    }
}
