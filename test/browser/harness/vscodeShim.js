// Test host for the results panel: stands in for VS Code's webview host. It provides acquireVsCodeApi
// (recording posted messages, keeping state in sessionStorage so a reload restores it), records CSP
// violations, and applies theme variables the way VS Code does (body class + --vscode-* on <html>).
(function () {
  'use strict';
  var STATE_KEY = 'kvlens-test-state';
  window.__posted = [];
  window.__violations = [];
  document.addEventListener('securitypolicyviolation', function (e) {
    window.__violations.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample });
  });

  var themes = {
    dark: {
      '--vscode-foreground': '#cccccc',
      '--vscode-editor-background': '#1f1f1f',
      '--vscode-descriptionForeground': '#9d9d9d',
      '--vscode-panel-border': '#2b2b2b',
      '--vscode-focusBorder': '#0078d4',
      '--vscode-list-hoverBackground': '#2a2d2e',
      '--vscode-charts-blue': '#3794ff',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-green': '#89d185',
      '--vscode-charts-purple': '#b180d7',
      '--vscode-charts-red': '#f14c4c',
      '--vscode-charts-yellow': '#cca700',
      '--vscode-button-background': '#0078d4',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#026ec1',
      '--vscode-button-secondaryBackground': '#313131',
      '--vscode-button-secondaryForeground': '#cccccc',
      '--vscode-button-secondaryHoverBackground': '#3c3c3c',
      '--vscode-badge-background': '#616161',
      '--vscode-badge-foreground': '#f8f8f8',
      '--vscode-sideBarSectionHeader-background': '#181818',
      '--vscode-sideBarTitle-foreground': '#cccccc',
      '--vscode-sideBar-background': '#181818',
      '--vscode-settings-dropdownBackground': '#313131',
      '--vscode-settings-dropdownBorder': '#3c3c3c',
      '--vscode-settings-dropdownForeground': '#cccccc',
      '--vscode-settings-dropdownListBorder': '#454545',
      '--vscode-list-activeSelectionBackground': '#04395e',
      '--vscode-list-activeSelectionForeground': '#ffffff',
      '--vscode-widget-shadow': 'rgba(0, 0, 0, 0.36)',
      '--vscode-icon-foreground': '#cccccc',
      '--vscode-textLink-foreground': '#4daafc',
      '--vscode-textLink-activeForeground': '#4daafc',
    },
    light: {
      '--vscode-foreground': '#3b3b3b',
      '--vscode-editor-background': '#ffffff',
      '--vscode-descriptionForeground': '#717171',
      '--vscode-panel-border': '#e5e5e5',
      '--vscode-focusBorder': '#005fb8',
      '--vscode-list-hoverBackground': '#f2f2f2',
      '--vscode-charts-blue': '#1a85ff',
      '--vscode-charts-orange': '#d18616',
      '--vscode-charts-green': '#388a34',
      '--vscode-charts-purple': '#652d90',
      '--vscode-charts-red': '#e51400',
      '--vscode-charts-yellow': '#bf8803',
      '--vscode-button-background': '#005fb8',
      '--vscode-button-foreground': '#ffffff',
      '--vscode-button-hoverBackground': '#0258a8',
      '--vscode-button-secondaryBackground': '#e5e5e5',
      '--vscode-button-secondaryForeground': '#3b3b3b',
      '--vscode-button-secondaryHoverBackground': '#cccccc',
      '--vscode-badge-background': '#cccccc',
      '--vscode-badge-foreground': '#3b3b3b',
      '--vscode-sideBarSectionHeader-background': '#f8f8f8',
      '--vscode-sideBarTitle-foreground': '#3b3b3b',
      '--vscode-sideBar-background': '#f8f8f8',
      '--vscode-settings-dropdownBackground': '#ffffff',
      '--vscode-settings-dropdownBorder': '#cecece',
      '--vscode-settings-dropdownForeground': '#3b3b3b',
      '--vscode-settings-dropdownListBorder': '#c8c8c8',
      '--vscode-list-activeSelectionBackground': '#e8e8e8',
      '--vscode-list-activeSelectionForeground': '#000000',
      '--vscode-widget-shadow': 'rgba(0, 0, 0, 0.16)',
      '--vscode-icon-foreground': '#3b3b3b',
      '--vscode-textLink-foreground': '#005fb8',
      '--vscode-textLink-activeForeground': '#005fb8',
    },
  };
  var common = {
    '--vscode-font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
    '--vscode-font-size': '13px',
    '--vscode-font-weight': 'normal',
    '--vscode-editor-font-family': '"Droid Sans Mono", monospace',
  };

  window.__setTheme = function (name) {
    var vars = themes[name];
    var style = document.documentElement.style;
    Object.keys(common).forEach(function (k) { style.setProperty(k, common[k]); });
    Object.keys(vars).forEach(function (k) { style.setProperty(k, vars[k]); });
    document.body.classList.remove('vscode-dark', 'vscode-light');
    document.body.classList.add('vscode-' + name);
  };
  window.__setTheme(sessionStorage.getItem('kvlens-test-theme') || 'dark');

  window.acquireVsCodeApi = function () {
    return {
      postMessage: function (message) { window.__posted.push(message); },
      getState: function () {
        var raw = sessionStorage.getItem(STATE_KEY);
        return raw ? JSON.parse(raw) : undefined;
      },
      setState: function (state) { sessionStorage.setItem(STATE_KEY, JSON.stringify(state)); },
    };
  };
})();
