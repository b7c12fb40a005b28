// Thread previews (PREVIEW_MODE=thread): a CloudFront Function, viewer-request, cloudfront-js-2.0.
// `{label}.{ThreadPreviewDomain}` is served from the edit bucket's folder `threads/{label}/`, where the
// worker deploys that chat thread's build (labels: supervisor/contract/previews.py), as a static host
// serves a folder: `/about/` and `/about` are `about/index.html`. A first label that no thread can have
// is refused before anything reaches the bucket. deploy/webordinary-edit.yaml inlines this file as is
// (tests/deploy/test_thread_previews.py checks they are the same and runs it with node).
var LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function refuse(statusCode, statusDescription) {
    return { statusCode: statusCode, statusDescription: statusDescription };
}

function handler(event) {
    var request = event.request;
    var host = request.headers.host ? request.headers.host.value.toLowerCase() : '';
    var label = host.split('.')[0];
    if (!LABEL.test(label) || label.indexOf('--') !== -1) {
        return refuse(404, 'Not Found');
    }
    var uri = request.uri;
    var path;
    try {
        path = decodeURIComponent(uri);
    } catch (e) {
        return refuse(400, 'Bad Request');
    }
    if (uri.charAt(0) !== '/' || path.split('/').indexOf('..') !== -1) {
        return refuse(400, 'Bad Request');
    }
    if (uri.charAt(uri.length - 1) === '/') {
        uri += 'index.html';
    } else if (uri.slice(uri.lastIndexOf('/') + 1).indexOf('.') === -1) {
        uri += '/index.html';
    }
    request.uri = '/threads/' + label + uri;
    return request;
}
