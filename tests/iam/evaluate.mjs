// Evaluates AWS requests against IAM policies with @cloud-copilot/iam-simulate, as AWS would:
// the identity policies of the role that made each request, the resource's own policy (bucket,
// key, queue, function), conditions included.
//
// usage: node evaluate.mjs INPUT.json [--json OUTPUT.json]
//
// INPUT.json:
//   {
//     "roles": [{"roleArn", "principal" (the session ARN that signed the requests),
//                "identityPolicies": [{"name", "policy"}]}],
//     "resourcePolicies": {"<arn>": <policy document>},
//     "requests": [{"id", "roleArn", "action", "resource", "resourceAccount",
//                   "context": {key: value | [values]}, "resourcePolicy": "<arn>" | null}]
//   }
//
// Prints one line per request (verdict, role, action, resource, context, reason), then the
// identity-policy grants (statement, action, resource) that no allowed request used. With
// --json, writes {results: [{id, verdict, reason, grants}], unusedGrants: [...]} as well.
// Exits 1 if any request is not allowed (or could not be evaluated), 2 on unusable input.

import { readFileSync, writeFileSync } from 'node:fs'
import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'

const args = process.argv.slice(2)
const jsonAt = args.indexOf('--json')
const jsonOut = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : undefined
if (args.length !== 1) {
  console.error('usage: node evaluate.mjs INPUT.json [--json OUTPUT.json]')
  process.exit(2)
}
const input = JSON.parse(readFileSync(args[0], 'utf8'))
const roles = new Map((input.roles ?? []).map((r) => [r.roleArn, r]))
const resourcePolicies = input.resourcePolicies ?? {}

const list = (x) => (x === undefined ? [] : Array.isArray(x) ? x : [x])

// Every (statement, action, resource) an Allow statement of a role's identity policies grants.
const grants = new Map() // key -> {roleArn, policy, statement, sid, action, resource}
const grantKey = (roleArn, policy, statement, action, resource) =>
  JSON.stringify([roleArn, policy, statement, action, resource])
for (const role of roles.values()) {
  for (const { name, policy } of role.identityPolicies) {
    list(policy.Statement).forEach((s, i) => {
      if (s.Effect !== 'Allow') return
      const actions = s.Action !== undefined ? list(s.Action) : list(s.NotAction).map((a) => `NotAction ${a}`)
      const resources =
        s.Resource !== undefined ? list(s.Resource) : list(s.NotResource).map((r) => `NotResource ${r}`)
      for (const action of actions) {
        for (const resource of resources) {
          grants.set(grantKey(role.roleArn, name, i + 1, action, resource), {
            roleArn: role.roleArn,
            policy: name,
            statement: i + 1,
            sid: s.Sid ?? '',
            action,
            resource
          })
        }
      }
    })
  }
}
const used = new Set()

function conditionText(c) {
  const values = list(c.values)
    .map((v) => v.value)
    .join(', ')
  const why = c.failedBecauseMissing ? ' (key absent from the request)' : c.resolvedConditionKeyValue !== undefined ? ` (request: ${c.resolvedConditionKeyValue})` : ''
  return `${c.operator} ${c.conditionKeyValue} [${values}]${why}`
}

// Why the statements that name the action did not allow the request.
function nearMisses(statements) {
  const out = []
  for (const s of statements ?? []) {
    const e = s.explain
    if (!e.actionMatch || e.effect !== 'Allow') continue
    const label = e.identifier
    if (!e.resourceMatch) {
      out.push(`${label}: resource not in [${list(e.resources).map((r) => r.resource).join(', ')}]`)
    } else if (e.principalMatch === 'NoMatch') {
      out.push(`${label}: principal not named`)
    } else if (!e.conditionMatch) {
      const failed = list(e.conditions).filter((c) => !c.matches)
      out.push(`${label}: condition ${failed.map(conditionText).join(' and ')} not met`)
    }
  }
  return out
}

function denialText(analysis) {
  const parts = []
  for (const d of getDenialReasons(analysis)) {
    const where = d.policyType === 'resource' ? 'resource policy' : d.policyType === 'identity' ? 'identity policies' : d.policyType
    if (d.denialType === 'Explicit') {
      parts.push(`explicit Deny in the ${where} (${d.statementId ?? `statement ${d.statementIndex}`}${d.policyIdentifier ? ` of ${d.policyIdentifier}` : ''})`)
    } else {
      const misses = nearMisses(
        d.policyType === 'identity' ? analysis.identityAnalysis?.unmatchedStatements : d.policyType === 'resource' ? analysis.resourceAnalysis?.unmatchedStatements : []
      )
      parts.push(`no Allow in the ${where}${misses.length ? ': ' + misses.join('; ') : ''}`)
    }
  }
  return parts.join('; ') || 'denied'
}

function grantText(analysis) {
  return getGrantReasons(analysis)
    .map((g) => `${g.policyType === 'resource' ? 'resource policy' : g.policyIdentifier}:${g.statementId ?? `#${g.statementIndex}`}`)
    .join(', ')
}

function markUsed(roleArn, analysis) {
  for (const s of analysis.identityAnalysis?.allowStatements ?? []) {
    const e = s.explain
    const index = s.statement.index()
    const actions = e.actions !== undefined ? list(e.actions).filter((a) => a.matches).map((a) => a.action) : list(e.notActions).map((a) => `NotAction ${a.action}`)
    const resources = e.resources !== undefined ? list(e.resources).filter((r) => r.matches).map((r) => r.resource) : list(e.notResources).map((r) => `NotResource ${r.resource}`)
    for (const action of actions) {
      for (const resource of resources) {
        used.add(grantKey(roleArn, s.policyId, index, action, resource))
      }
    }
  }
}

const results = []
for (const request of input.requests ?? []) {
  const role = roles.get(request.roleArn)
  const result = { id: request.id, verdict: 'Error', reason: '', grants: '' }
  results.push(result)
  if (!role) {
    result.reason = `no policies for role ${request.roleArn}`
    continue
  }
  const resourcePolicy = request.resourcePolicy ? resourcePolicies[request.resourcePolicy] : undefined
  const simulation = {
    request: {
      principal: role.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: request.context ?? {}
    },
    identityPolicies: role.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: resourcePolicy ?? undefined
  }
  let response
  try {
    response = await runSimulation(simulation, { simulationMode: 'Strict' })
  } catch (e) {
    result.reason = `simulator failed: ${e?.message ?? e}`
    continue
  }
  if (response.resultType === 'error') {
    result.reason = `invalid simulation: ${JSON.stringify(response.errors)}`
    continue
  }
  const analyses = response.resultType === 'single' ? [response.result] : response.results
  result.verdict = response.overallResult
  if (response.overallResult === 'Allowed') {
    result.grants = analyses.map((a) => grantText(a.analysis)).join(' | ')
    result.reason = `allowed by ${result.grants}`
    for (const a of analyses) markUsed(request.roleArn, a.analysis)
  } else {
    result.reason = analyses.map((a) => denialText(a.analysis)).join(' | ') || 'no matching resource pattern'
  }
  const ignored = analyses.flatMap((a) => a.ignoredContextKeys ?? [])
  if (ignored.length) result.ignoredContextKeys = [...new Set(ignored)]
}

const unusedGrants = [...grants.entries()].filter(([k]) => !used.has(k)).map(([, g]) => g)

const byId = new Map((input.requests ?? []).map((r) => [r.id, r]))
const shortRole = (arn) => (arn ?? '').split('/').pop()
for (const r of results) {
  const q = byId.get(r.id)
  const context = Object.entries(q.context ?? {})
    .filter(([k]) => !k.startsWith('aws:Principal') && k !== 'aws:SecureTransport' && k !== 'aws:RequestedRegion' && k !== 'aws:userid')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ')
  console.log(`${r.verdict.padEnd(16)} ${shortRole(q.roleArn)}  ${q.action} ${q.resource}${context ? '  {' + context + '}' : ''}  -- ${r.reason}`)
}
if (unusedGrants.length) {
  console.log('\ngrants no recorded request used:')
  for (const g of unusedGrants) {
    console.log(`  ${shortRole(g.roleArn)}  ${g.sid || `statement ${g.statement}`} (${g.policy})  ${g.action}  ${g.resource}`)
  }
}
const bad = results.filter((r) => r.verdict !== 'Allowed')
console.log(`\n${results.length - bad.length} allowed, ${bad.length} not allowed`)
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ results, unusedGrants }, null, 1))
process.exit(bad.length ? 1 : 0)
