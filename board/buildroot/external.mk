include $(sort $(wildcard $(BR2_EXTERNAL_EASYNC_PATH)/package/*/*.mk))
