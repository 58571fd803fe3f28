//! DescribeUserScramCredentials (API 50) and AlterUserScramCredentials (API 51), so
//! `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]' --entity-type users`
//! works. The client sends a salt and the salted password; the broker keeps StoredKey and
//! ServerKey (RFC 5802) in the metadata quorum and drops the salted password.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use sluice_raft::controller::{AlterScramRequest, Operation, OperationResponse, ScramUpsertion};

use super::{message, str_bytes, RequestContext};
use crate::security::scram::ScramMechanism;

/// Most users one request names.
const USERS_PER_REQUEST_MAX: usize = 1000;
/// Longest salted password accepted (SHA-512 gives 64 bytes).
const SALTED_PASSWORD_BYTES_MAX: usize = 1024;

pub fn describe(
    context: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let image = context.broker.topics();
    let scram = &image.metadata.scram;
    let mut response = DescribeUserScramCredentialsResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::DESCRIBE) {
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        response.error_message = Some(str_bytes("Cluster authorization failed."));
        return response;
    }
    let users: Vec<String> = match &request.users {
        // Null or empty: every user with a credential.
        Some(users) if !users.is_empty() => {
            let mut names: Vec<String> = users.iter().map(|u| u.name.to_string()).collect();
            names.truncate(USERS_PER_REQUEST_MAX);
            names
        }
        _ => {
            let mut names: Vec<String> = scram
                .credentials
                .keys()
                .map(|(user, _)| user.clone())
                .collect();
            names.dedup();
            names
        }
    };
    for user in users {
        let mut result = DescribeUserScramCredentialsResult::default();
        result.user = str_bytes(user.clone());
        if response
            .results
            .iter()
            .any(|known| known.user.as_str() == user)
        {
            result.error_code = ResponseError::DuplicateResource.code();
            result.error_message = Some(str_bytes("user named twice"));
            response.results.push(result);
            continue;
        }
        for ((name, mechanism), credential) in &scram.credentials {
            if *name == user {
                let mut info = CredentialInfo::default();
                info.mechanism = *mechanism;
                info.iterations = credential.iterations;
                result.credential_infos.push(info);
            }
        }
        if result.credential_infos.is_empty() {
            result.error_code = ResponseError::ResourceNotFound.code();
            result.error_message = Some(str_bytes(format!(
                "Attempt to describe a user credential that does not exist: {user}"
            )));
        }
        response.results.push(result);
    }
    response
}

pub async fn alter(
    context: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut response = AlterUserScramCredentialsResponse::default();
    if !context.authorize_cluster(sluice_raft::image::acls::operation::ALTER) {
        let users = request.upsertions.iter().map(|u| &u.name);
        let users = users.chain(request.deletions.iter().map(|d| &d.name));
        for user in users.take(USERS_PER_REQUEST_MAX) {
            response.results.push(result(
                user,
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.",
            ));
        }
        return response;
    }
    let mut operation = AlterScramRequest {
        deletions: Vec::new(),
        upsertions: Vec::new(),
    };
    let mut refused: Vec<AlterUserScramCredentialsResult> = Vec::new();
    for deletion in request.deletions.iter().take(USERS_PER_REQUEST_MAX) {
        operation
            .deletions
            .push((deletion.name.to_string(), deletion.mechanism));
    }
    for upsertion in request.upsertions.iter().take(USERS_PER_REQUEST_MAX) {
        let user = upsertion.name.to_string();
        let Some(mechanism) = ScramMechanism::from_code(upsertion.mechanism) else {
            refused.push(result(
                &user,
                ResponseError::UnsupportedSaslMechanism,
                "unknown mechanism",
            ));
            continue;
        };
        if upsertion.salted_password.is_empty()
            || upsertion.salted_password.len() > SALTED_PASSWORD_BYTES_MAX
        {
            refused.push(result(
                &user,
                ResponseError::UnacceptableCredential,
                "bad salted password",
            ));
            continue;
        }
        let credential = mechanism.credential_from_salted(
            upsertion.salt.to_vec(),
            &upsertion.salted_password,
            upsertion.iterations,
        );
        operation.upsertions.push(ScramUpsertion {
            user,
            mechanism: mechanism.code(),
            iterations: credential.iterations,
            salt: credential.salt,
            stored_key: credential.stored_key,
            server_key: credential.server_key,
        });
    }
    match context
        .broker
        .submit(Operation::AlterScram(operation))
        .await
    {
        Ok(OperationResponse::AlterScram(results)) => {
            for outcome in results {
                let mut entry = AlterUserScramCredentialsResult::default();
                entry.user = str_bytes(outcome.user.clone());
                entry.error_code = outcome.error_code;
                entry.error_message = outcome.error_message.map(str_bytes);
                if outcome.error_code == 0 {
                    tracing::info!(user = %outcome.user, peer = %context.peer, "SCRAM credentials altered");
                }
                response.results.push(entry);
            }
        }
        Ok(other) => {
            tracing::error!(?other, "controller answered another operation");
        }
        Err(error) => {
            for user in request
                .upsertions
                .iter()
                .map(|u| &u.name)
                .chain(request.deletions.iter().map(|d| &d.name))
            {
                let mut entry = AlterUserScramCredentialsResult::default();
                entry.user = user.clone();
                entry.error_code = error.code.code();
                entry.error_message = message(&error);
                response.results.push(entry);
            }
        }
    }
    response.results.extend(refused);
    response
}

fn result(user: &str, error: ResponseError, text: &str) -> AlterUserScramCredentialsResult {
    let mut entry = AlterUserScramCredentialsResult::default();
    entry.user = str_bytes(user);
    entry.error_code = error.code();
    entry.error_message = Some(str_bytes(text));
    entry
}
