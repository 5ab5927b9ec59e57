export {
  startTestAuthServer,
  DEVICE_CODE_GRANT_TYPE,
  type TestAuthServer,
  type TestAuthServerOptions,
  type TestClients,
  type TestEndpoints,
  type GrantCounts,
  type CountedGrantType,
  type TokenRequestInfo,
  type InjectedResponse,
  type TokenEndpointFaultHook,
  type RequestRecord,
  type IntrospectionResult,
  type HttpResult,
} from './server.js';
export {
  createScriptedUser,
  ScriptedUserError,
  type ScriptedUser,
  type AuthorizeOptions,
  type ApproveDeviceOptions,
  type FollowResult,
} from './scripted-user.js';
