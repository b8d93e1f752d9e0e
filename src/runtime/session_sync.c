/* Prefix reuse for sessions: a conversation re-rendered each turn shares most of its
 * tokens with what the session already holds, so only the tail is evaluated. */
#include "core/status.h"

meshlm_status meshlm_session_sync(meshlm_session *s, const int32_t *tokens, int32_t n, int32_t *n_eval) {
    if (!s || !tokens || !n_eval) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "session_sync: NULL argument");
    *n_eval = 0;
    if (n < 1) return meshlm_fail(MESHLM_ERR_INVALID_ARG, "session_sync: no tokens");
    const int32_t *held = meshlm_session_tokens(s);
    int32_t pos = meshlm_session_pos(s), keep = 0;
    while (keep < pos && keep < n && held[keep] == tokens[keep]) keep++;
    /* The last token is evaluated again when everything matches: the logits it leaves
     * are what the next sample draws from. */
    if (keep == n) keep = n - 1;
    meshlm_status rc = meshlm_session_truncate(s, keep);
    /* A windowed model may have dropped what the kept prefix needs: evaluate it all. */
    if (rc == MESHLM_ERR_RANGE) rc = meshlm_session_truncate(s, keep = 0);
    if (rc) return rc;
    if ((rc = meshlm_session_eval(s, tokens + keep, n - keep))) return rc;
    *n_eval = n - keep;
    return MESHLM_OK;
}
