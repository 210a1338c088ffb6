// The hierarchy script of the reference (examples/80_hierarchy/code.js,
// spec §3.15), in ECMAScript 5.1.  Install it as both the changed and the
// deleting hook named "hierarchy": things named "/a/b" are groups, "d/c"
// channels of device "d", and a device joins the group in its
// "io.drogue/group" annotation.  registerChild creates missing parents with
// the same hooks; the last unregisterChild deletes them, bottom-up.
var state = context.newState;
var md = state.metadata;
var name = md.name;
var annotations = md.annotations || (md.annotations = {});
var reported = state.reportedState || (state.reportedState = {});
var rec = state.reconciliation || {};
var now = new Date().toISOString();

function path(s) {
  return s.split('/').filter(function (part) { return part.length > 0; });
}
function hook(kind) {
  return rec[kind] && rec[kind].hierarchy ? {hierarchy: {javaScript: rec[kind].hierarchy.javaScript}} : {};
}
function register(parent) {
  sendMessage(parent, {registerChild: {'$ref': name,
    template: {reconciliation: {changed: hook('changed'), deleting: hook('deleting')}}}});
}
function unregister(parent) {
  sendMessage(parent, {unregisterChild: {'$ref': name}});
}
function setParent(parent) {
  reported['$parent'] = {value: parent, lastUpdate: now};
}

if (name.charAt(0) === '/') {
  // a group: its parent is the path minus its last element; "/" has none
  var p = path(name);
  if (p.length > 0) {
    var parent = '/' + p.slice(0, -1).join('/');
    if (context.action === 'deleting') {
      unregister(parent);
    } else {
      if (annotations['io.drogue/group'] !== p.join('/')) {
        annotations['io.drogue/group'] = p.join('/');
        register(parent);
      }
      setParent(parent);
    }
  }
} else if (name.indexOf('/') >= 0) {
  // a channel of a device
  var device = name.substring(0, name.indexOf('/'));
  var channel = name.substring(name.indexOf('/') + 1);
  if (context.action === 'deleting') {
    unregister(device);
  } else {
    if (annotations['io.drogue/device'] !== device || annotations['io.drogue/channel'] !== channel) {
      annotations['io.drogue/device'] = device;
      annotations['io.drogue/channel'] = channel;
      register(device);
    }
    setParent(device);
  }
} else if (annotations['io.drogue/group'] !== undefined) {
  // a device in a group
  var group = path(annotations['io.drogue/group']).join('/');
  if (context.action === 'deleting') {
    unregister('/' + group);
  } else {
    annotations['io.drogue/device'] = name;
    var before = context.currentState.metadata.annotations || {};
    if (before['io.drogue/group'] !== annotations['io.drogue/group']) {
      register('/' + group);
    }
    setParent('/' + group);
  }
}
