/* A mosquitto (plugin API v5) plugin for tests: refuses SUBSCRIBE to filters starting with "secret/",
 * which makes mosquitto answer with SUBACK 0x80. mosquitto's own acl_file only filters delivery. */
#include <string.h>

#include "mosquitto.h"
#include "mosquitto_broker.h"
#include "mosquitto_plugin.h"

static mosquitto_plugin_id_t *plugin_id = NULL;

static int on_acl_check(int event, void *event_data, void *userdata) {
  (void)event;
  (void)userdata;
  struct mosquitto_evt_acl_check *check = event_data;
  if (check->access == MOSQ_ACL_SUBSCRIBE && strncmp(check->topic, "secret/", 7) == 0) {
    return MOSQ_ERR_ACL_DENIED;
  }
  return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions) {
  for (int i = 0; i < supported_version_count; i++) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
                          struct mosquitto_opt *options, int option_count) {
  (void)userdata;
  (void)options;
  (void)option_count;
  plugin_id = identifier;
  return mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count) {
  (void)userdata;
  (void)options;
  (void)option_count;
  return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
}
